// Starts `python -m planeteer_action <step>` from action.yml's github-script steps, and is that step's process.
//
// The step's script is `return require('<action path>/planeteer_action/action/launch.js').launch(step, core)`:
// of what actions/github-script@v9 gives a script it uses `require` (still its wrapRequire in v9) and `core`
// only; nothing of `@actions/github`, which v9 scripts can no longer require (it became ESM-only).
//
// Why a JavaScript step: the runner gives the artifact and cache services' token (ACTIONS_RUNTIME_TOKEN) only
// to JavaScript and Docker steps. Exporting it through GITHUB_ENV would hand it to every later step of the
// job; this launcher gives it to planeteer's own process only.
//
// What it hands over, and how: the runner's ACTIONS_* credentials and the action's INPUT_* values (among
// them the secret inputs) go to Python through a pipe (fd 3), never through its environment, and are then
// blanked in this process's own initial environment, which any process of the user (an agent's command,
// say) could otherwise read in /proc/<pid>/environ. Everything else of the environment is passed as it is.
//
// Signals: a cancellation's SIGINT (and the SIGTERM that follows) is forwarded to Python, which runs in a
// process group of its own so that it gets each signal once. Python's exit code becomes this step's.
'use strict'

const {spawn} = require('child_process')
const fs = require('fs')
const os = require('os')

const HANDED_OVER = /^(INPUT_|ACTIONS_)/
const VARIABLES_FD = 3
// Its name is read by planeteer_action/action/context.py.
const VARIABLES_FD_ENV = 'PLANETEER_STEP_VARIABLES_FD'
// /proc/<pid>/stat's env_start (field 50), counted from the field after the command name.
const ENV_START_FIELD = 47

function launch(step, core) {
  const python = process.env.PLANETEER_PYTHON
  if (!python) {
    core.setFailed('PLANETEER_PYTHON is not set: the install step of this action must run before this one')
    process.exit(1)
  }
  const handed = {}
  const env = {[VARIABLES_FD_ENV]: String(VARIABLES_FD)}
  for (const [name, value] of Object.entries(process.env)) {
    if (HANDED_OVER.test(name)) handed[name] = value
    else env[name] = value
  }
  blankInitialEnvironment(name => HANDED_OVER.test(name), core)
  const child = spawn(python, ['-m', 'planeteer_action', step], {
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    detached: true
  })
  child.stdio[VARIABLES_FD].on('error', () => {}) // Python gone before reading: its exit code says why
  child.stdio[VARIABLES_FD].end(JSON.stringify(handed))
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => child.kill(signal))
  }
  return new Promise(() => {
    child.on('error', error => {
      core.setFailed(`could not start ${python}: ${error.message}`)
      process.exit(1)
    })
    child.on('exit', (code, signal) => process.exit(code ?? 128 + os.constants.signals[signal]))
  })
}

// Overwrites with 'x' the values that `hide` picks in this process's initial environment block, the bytes
// /proc/<pid>/environ shows (Node can neither exec nor make itself non-dumpable).
function blankInitialEnvironment(hide, core) {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = Number(fields[ENV_START_FIELD])
    const block = Buffer.alloc(Number(fields[ENV_START_FIELD + 1]) - start)
    const memory = fs.openSync('/proc/self/mem', 'r+')
    try {
      fs.readSync(memory, block, 0, block.length, start)
      let offset = 0
      while (offset < block.length) {
        let end = block.indexOf(0, offset)
        if (end < 0) end = block.length
        const equals = block.indexOf('=', offset)
        if (equals > offset && equals < end && hide(block.toString('latin1', offset, equals))) {
          const blank = Buffer.alloc(end - equals - 1, 'x')
          fs.writeSync(memory, blank, 0, blank.length, start + equals + 1)
        }
        offset = end + 1
      }
    } finally {
      fs.closeSync(memory)
    }
  } catch (error) {
    core.warning(`could not hide the step's credentials from /proc/${process.pid}/environ: ${error.code || error}`)
  }
}

module.exports = {launch}
