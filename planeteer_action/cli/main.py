"""The `planeteer` command group: one module per command group, and one way to fail (see `common`).

Exit codes: 0 all done, 1 a task failed or is blocked, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import click

from planeteer_action import __version__
from planeteer_action.cli.common import PlaneteerGroup
from planeteer_action.cli.doctor import doctor
from planeteer_action.cli.plans import retry, status, validate
from planeteer_action.cli.pull import pull
from planeteer_action.cli.run import run
from planeteer_action.cli.sessions import sessions


@click.group(cls=PlaneteerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="planeteer")
def main() -> None:
    """Run a Planeteer plan with GitHub Copilot agents, in parallel, resumable after any interruption.

    A plan is the JSON file the Planeteer TUI writes (.planeteer/<id>.json): tasks with descriptions,
    acceptance criteria and dependencies. `planeteer run` gives each task to its own Copilot session,
    as many at once as the dependencies and --concurrency allow, and saves the plan after every change.
    Stop it any time (Ctrl-C); run it again and it resumes the interrupted tasks in their own sessions.

    \b
    Quick start:
      planeteer validate .planeteer/my-plan.json
      planeteer run .planeteer/my-plan.json            # uses your Copilot login
      planeteer run --offline .planeteer/my-plan.json  # built-in local model, no credentials
      planeteer status .planeteer/my-plan.json

    Exit codes: 0 all done, 1 a task failed or is blocked, 2 bad input, 130 interrupted.
    """


for command in (run, validate, status, retry, doctor, sessions, pull):
    main.add_command(command)
