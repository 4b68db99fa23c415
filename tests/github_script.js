// Runs an actions/github-script@v9 `script` under node as that action does, for the tests' job simulation.
//
// What it imitates, in actions/github-script:
// - src/main.ts (v9; the stored copy id 5360064681 plus actions/github-script#700): main() reads the
//   `github-token` and `script` inputs as required, builds the script's arguments
//   {require: wrapRequire, __original_require__, github, octokit: github, getOctokit, context, core, exec,
//   glob, io} (the argument list of src/args.ts @f805cf58: v9 added `getOctokit`), awaits the script, and
//   writes JSON.stringify(result) to the `result` output (result-encoding `json`, its default);
//   `process.on('unhandledRejection', handleError)` and `main().catch(handleError)`, where handleError is
//   `console.error(err); core.setFailed(\`Unhandled error: ${err}\`)`.
// - src/async-function.ts @35053f82: `new AsyncFunction(...Object.keys(args), source)(...Object.values(args))`.
// - src/wrap-require.ts: a `require` whose relative IDs resolve against process.cwd().
// Since v9, `require('@actions/github')` fails in a script (that package became ESM-only): it is no module here.
// The GitHub client and the toolkit's exec/glob/io are not simulated: a script touching them fails loudly.
// `core` is the part of @actions/core the action's scripts use, written as packages/core/src/core.ts writes
// it (getInput, setSecret `::add-mask::`, warning, error, setFailed sets process.exitCode = 1, setOutput and
// exportVariable append `name<<delimiter` blocks to GITHUB_OUTPUT / GITHUB_ENV).
'use strict'

const crypto = require('crypto')
const fs = require('fs')
const path = require('path')

const escape = text => String(text).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A')

function appendFileCommand(file, name, value) {
  const delimiter = `ghadelimiter_${crypto.randomUUID()}`
  fs.appendFileSync(file, `${name}<<${delimiter}\n${value}\n${delimiter}\n`)
}

const core = {
  getInput: (name, options = {}) => {
    const value = process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] || ''
    if (options.required && !value) throw new Error(`Input required and not supplied: ${name}`)
    return options.trimWhitespace === false ? value : value.trim()
  },
  setSecret: value => process.stdout.write(`::add-mask::${escape(value)}\n`),
  info: text => process.stdout.write(`${text}\n`),
  warning: text => process.stdout.write(`::warning::${escape(text)}\n`),
  error: text => process.stdout.write(`::error::${escape(text)}\n`),
  setFailed: text => {
    process.exitCode = 1
    core.error(text)
  },
  // toCommandValue: undefined and null become '', other non-strings JSON.
  setOutput: (name, value) => {
    const text = value == null ? '' : typeof value === 'string' ? value : JSON.stringify(value)
    appendFileCommand(process.env.GITHUB_OUTPUT, name, text)
  },
  exportVariable: (name, value) => {
    process.env[name] = value
    appendFileCommand(process.env.GITHUB_ENV, name, value)
  }
}

const wrapRequire = new Proxy(require, {
  apply: (target, thisArg, [moduleID]) =>
    target.apply(thisArg, [moduleID.startsWith('.') ? path.join(process.cwd(), moduleID) : moduleID])
})

function notSimulated(name) {
  return new Proxy(() => {}, {
    get: () => {
      throw new Error(`github_script.js does not simulate github-script's \`${name}\``)
    },
    apply: () => {
      throw new Error(`github_script.js does not simulate github-script's \`${name}\``)
    }
  })
}

function handleError(err) {
  console.error(err)
  core.setFailed(`Unhandled error: ${err}`)
}

async function main() {
  core.getInput('github-token', {required: true})
  const github = notSimulated('github')
  const args = {
    require: wrapRequire,
    __original_require__: require,
    github,
    octokit: github,
    getOctokit: notSimulated('getOctokit'),
    context: notSimulated('context'),
    core,
    exec: notSimulated('exec'),
    glob: notSimulated('glob'),
    io: notSimulated('io')
  }
  const source = core.getInput('script', {required: true})
  const AsyncFunction = Object.getPrototypeOf(async () => null).constructor
  const result = await new AsyncFunction(...Object.keys(args), source)(...Object.values(args))
  core.setOutput('result', JSON.stringify(result))
}

process.on('unhandledRejection', handleError)
main().catch(handleError)
