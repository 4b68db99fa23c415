"""The `planeteer` console script: a Ctrl-C (or SIGTERM) at any instant exits 130, without a traceback.

While modules load, Python's import machinery can print a KeyboardInterrupt as "Exception ignored" and
carry on, or die with a traceback; and there is nothing to clean up yet. So while loading, a Ctrl-C ends
the process at once with 130 (`loading`); from then on the command group maps it (see `common`), and once
the command is over it is ignored while the interpreter shuts down. SIGTERM is treated as a Ctrl-C
throughout (a CI runner's cancellation, or `kill`), never the default death with 143. This
module loads nothing itself, not even `signal` (which builds enums when imported): only the C `_signal`.
"""

from __future__ import annotations

import _signal
import os
from types import FrameType, TracebackType

EXIT_INTERRUPTED = 130  # errors.EXIT_INTERRUPTED, not imported: nothing loads before the handler is in place
_STOP_SIGNALS = (_signal.SIGINT, _signal.SIGTERM)


def main() -> None:
    with loading():
        from planeteer_action.cli.main import main as planeteer
    # Both mean exit 130, also when a parent started us with them ignored (a shell's background job).
    for signum in _STOP_SIGNALS:
        _signal.signal(signum, _signal.default_int_handler)
    try:
        planeteer(prog_name="planeteer")
    finally:
        # The command is over, its exit code chosen: a signal while the interpreter shuts down changes nothing.
        for signum in _STOP_SIGNALS:
            _signal.signal(signum, _signal.SIG_IGN)


class loading:
    """Modules load in here: a Ctrl-C exits at once, with 130. Only for work that leaves nothing behind."""

    def __enter__(self) -> None:
        self._previous = {signum: _signal.signal(signum, _exit_interrupted) for signum in _STOP_SIGNALS}

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            _signal.signal(signum, handler)


def _exit_interrupted(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"planeteer: interrupted\n")
    os._exit(EXIT_INTERRUPTED)
