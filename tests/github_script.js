// Runs an actions/github-script `script` under node as that action does, for the tests' job simulation.
//
// actions/github-script (src/main.ts, src/async-function.ts) reads the script from its `script` input
// (INPUT_SCRIPT), builds `new AsyncFunction(...Object.keys(args), source)` and calls it with `require`,
// `core`, `github`, `context`, ...; a rejection is reported with core.setFailed. Only `require` and the part
// of `core` the action's scripts use are given here, written as @actions/core writes them
// (packages/core/src/core.ts: setSecret prints `::add-mask::`, warning `::warning::`, setFailed sets
// process.exitCode = 1 and prints `::error::`, exportVariable appends `name<<delimiter` to GITHUB_ENV).
'use strict'

const fs = require('fs')
const crypto = require('crypto')

const escape = text => String(text).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A')

const core = {
  getInput: name => (process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] || '').trim(),
  setSecret: value => process.stdout.write(`::add-mask::${escape(value)}\n`),
  info: text => process.stdout.write(`${text}\n`),
  warning: text => process.stdout.write(`::warning::${escape(text)}\n`),
  error: text => process.stdout.write(`::error::${escape(text)}\n`),
  setFailed: text => {
    process.exitCode = 1
    core.error(text)
  },
  exportVariable: (name, value) => {
    process.env[name] = value
    const delimiter = `ghadelimiter_${crypto.randomUUID()}`
    fs.appendFileSync(process.env.GITHUB_ENV, `${name}<<${delimiter}\n${value}\n${delimiter}\n`)
  }
}

const AsyncFunction = Object.getPrototypeOf(async () => null).constructor
const script = core.getInput('script')
new AsyncFunction('require', 'core', script)(require, core).catch(error => {
  console.error(error)
  core.setFailed(`Unhandled error: ${error}`)
})
