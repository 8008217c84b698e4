"""Two error kinds (bad input: exit 2; internal failure: exit 1), and the CLI wrapper that turns them into one line.

Exit codes (CONTRACTS.md): 0 success, 2 bad input or usage, 1 internal failure.
"""
from __future__ import annotations

import functools
import os
import sys


class HacException(Exception):
    """What the toolkit says in one line; ``exit_code`` tells the two kinds apart."""

    exit_code = 1


class HacError(HacException):
    """Bad input or usage: shown to the user as one line, exit code 2."""

    exit_code = 2


class HacFailure(HacException):
    """An internal failure the user should know about in one line (e.g. parity failed): exit code 1.

    A sibling of ``HacError``, not a kind of it: ``except HacError`` never swallows a failure."""

    exit_code = 1


class BatchFailed(HacFailure):
    """One batch could not be classified (a remote engine's server is down or did not answer in time):
    the pipeline reports it for the clips of that batch and goes on; the run then exits 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``): unwinds like Ctrl-C, so every cleanup runs; exit code 143."""


def _raise_terminated(signum, frame):
    raise Terminated()


_PROGRAM: list[str] = []


def program(default: str) -> str:
    """The name of the running HAC command (``hac-train`` while it prepares faces), else ``default``."""
    return _PROGRAM[-1] if _PROGRAM else default


_BLOCKED: list = []


def left_blocked(thread) -> None:
    """A thread was left in a blocking native read (a stalled stream after Ctrl-C). The command then exits
    with ``os._exit`` once everything is written: a normal interpreter exit would run C++ destructors under
    that thread (``terminate called without an active exception``, SIGABRT instead of the exit code)."""
    _BLOCKED.append(thread)


def cli_entry(prog: str):
    """Decorate a ``main(argv)`` so HacError → ``prog: error: msg`` + its exit code, crash → one line + 1.

    Set ``HAC_DEBUG=1`` to see tracebacks.
    """

    def wrap(fn):
        @functools.wraps(fn)
        def main(*args, **kwargs):
            _PROGRAM.append(prog)
            _BLOCKED.clear()
            try:
                return guarded(*args, **kwargs)
            except SystemExit as e:
                if any(t.is_alive() for t in _BLOCKED):  # results and messages are out; do not unwind under a blocked native thread
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
                raise
            finally:
                _PROGRAM.pop()

        def guarded(*args, **kwargs):
            import signal
            import threading

            import warnings

            debug = os.environ.get("HAC_DEBUG")
            if not debug:  # a warning is a note of one line, not two lines of source
                warnings.formatwarning = lambda message, *_a, **_k: f"{prog}: note: {message}\n"
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, _raise_terminated)
            try:
                rc = fn(*args, **kwargs)
            except HacException as e:
                if debug:
                    raise
                print(f"{prog}: error: {e}", file=sys.stderr)
                sys.exit(e.exit_code)
            except Terminated:
                print(f"{prog}: terminated", file=sys.stderr)
                sys.exit(143)
            except OSError as e:
                from hac_runtime.atomic import OS_REASONS, os_reason

                if debug or e.errno not in OS_REASONS:
                    if debug:
                        raise
                    _internal(prog, e)
                where = f"{e.filename}: " if e.filename else ""
                print(f"{prog}: error: {where}{os_reason(e)}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                sys.exit(130)
            except SystemExit:
                raise
            except Exception as e:  # noqa: BLE001 - last resort: one line, not a traceback
                if debug:
                    raise
                _internal(prog, e)
            sys.exit(rc or 0)

        return main

    return wrap


def some_names(names: list[str], shown: int = 3) -> str:
    """``a, b, c and 2 more``: the first ``shown`` of ``names`` for a one-line message."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(e)
    return text.splitlines()[0] if text.strip() else type(e).__name__


def _internal(prog: str, e: Exception):
    print(f"{prog}: internal error: {type(e).__name__}: {one_line(e)} (HAC_DEBUG=1 shows the traceback)",
          file=sys.stderr)
    sys.exit(1)


def click_main(command, prog: str):
    """Console-script entry for a click command: usage errors → click's message + exit 2,
    HacError → one line + its exit code, crash → one line + exit 1 (see ``cli_entry``)."""

    @cli_entry(prog)
    def main(argv=None):
        import click

        # Our own lines say what broke: no raw FFmpeg or OpenCV chatter (read when cv2 is first imported).
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

        try:
            return command.main(args=argv, prog_name=prog, standalone_mode=False)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort as e:  # click turns KeyboardInterrupt (and so SIGTERM) into Abort
            raise (Terminated() if isinstance(e.__context__, Terminated) else KeyboardInterrupt()) from None

    return main
