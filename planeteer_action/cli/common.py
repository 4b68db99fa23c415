"""What every `planeteer` command shares: its options, the one way a command fails, and Ctrl-C as exit 130.

Commands raise; they never print an error and exit by hand. `PlaneteerGroup` turns every PlaneteerError
into its one line and exit code, and a Ctrl-C at any point of a command (parsing included) into exit 130
without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from planeteer_action.cli.entry import loading
from planeteer_action.engine.agent import Agent
from planeteer_action.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, PlaneteerError

T = TypeVar("T")

PLAN_ARGUMENT = click.argument("plan", type=click.Path(path_type=Path, dir_okay=False))
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of tables.")
COPILOT_HOME_OPTION = click.option(
    "--copilot-home",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="PLANETEER_COPILOT_HOME",
    help="Where Copilot keeps its sessions (default ~/.copilot). Env: PLANETEER_COPILOT_HOME.",
)
WORKDIR_OPTION = click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("."),
    show_default=True,
    envvar="PLANETEER_WORKDIR",
    help="The repository the agents work in. Env: PLANETEER_WORKDIR.",
)


def fail(message: str, exit_code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Stop the command: one line on stderr naming the problem (and its fix), then `exit_code`."""
    click.echo(f"planeteer: error: {message}", err=True)
    raise click.exceptions.Exit(exit_code)


def _interrupted() -> NoReturn:
    click.echo("planeteer: interrupted", err=True)
    raise click.exceptions.Exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def _exit_codes() -> Iterator[None]:
    try:
        yield
    except PlaneteerError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except click.Abort as exc:
        # click.prompt and click.confirm turn a Ctrl-C into Abort; an end of input stays an abort.
        if isinstance(exc.__context__, KeyboardInterrupt):
            _interrupted()
        raise


class PlaneteerGroup(click.Group):
    """A command group whose commands fail through `_exit_codes`, from parsing their arguments to the end."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        with _exit_codes():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _exit_codes():
            return super().invoke(ctx)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def console() -> Console:
    """Tables for people: on a pipe, wide enough that session ids are never cut."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def with_agent(copilot_home: Path | None, work: Callable[[Agent], Awaitable[T]]) -> T:
    """Run `work` on a started Copilot runtime, stopped afterwards whatever happens."""
    # The Copilot SDK takes half a second to import: only commands that start the runtime pay for it.
    with loading():
        from planeteer_action.runner import agent_runtime

    async def go() -> T:
        async with agent_runtime(copilot_home.resolve() if copilot_home else None) as agent:
            return await work(agent)

    return asyncio.run(go())
