"""The `pyvfio` command's entry point (the console script's `pyvfio.cli:main`).

Its first line is inside the one handler, and the subcommands (pyvfio.cli.dispatch)
are imported after it, so that whatever happens, Ctrl-C during the imports included,
ends in one line on stderr and an exit status, never a traceback:

    a PyvfioError          its message, its exit_code (2 bad input, 4 refusal, ...)
    Ctrl-C, SIGTERM        "pyvfio: interrupted", 130 (teardown has run on the way out)
    stdout/stderr failing  "cannot write to standard output: ...", 74 (EX_IOERR)
    anything else          the exception's type and message, "this is a bug", 70
                           (EX_SOFTWARE); PYVFIO_DEBUG=1 prints the traceback too
"""

import errno
import os
import signal
import sys

from ..errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_IO, StreamError   # stdlib only: nothing to be interrupted in


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM tears down exactly like Ctrl-C


class _Guarded:
    """A standard stream whose write or flush failing (EPIPE, ENOSPC, EIO, ...)
    raises StreamError: the handler then tells a lost output from a bug, even
    where a command catches OSError for its own files."""

    def __init__(self, stream, name):
        self._stream, self._name = stream, name

    def _closed(self):
        # started with the fd closed (`>&-`): Python then has no stream at all
        return StreamError(self._name, OSError(errno.EBADF, os.strerror(errno.EBADF)))

    def write(self, text):
        if self._stream is None:
            raise self._closed()
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise StreamError(self._name, exc) from None

    def flush(self):
        if self._stream is None:
            raise self._closed()
        try:
            self._stream.flush()
        except OSError as exc:
            raise StreamError(self._name, exc) from None

    def isatty(self):
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _one_line(text):
    return " ".join(str(text).split())


def _say(line):
    """The one line on stderr; if stderr itself is gone there is no one to tell."""
    try:
        sys.stderr.write(_one_line(line) + "\n")
        sys.stderr.flush()
    except (OSError, StreamError):
        _silence(sys.stderr)


def _silence(stream):
    """Point a failed standard stream's fd at /dev/null, so that what is still
    buffered does not fail again, with a traceback, at the interpreter's exit (the
    Python docs' advice for EPIPE)."""
    if isinstance(stream, _Guarded):
        stream = stream._stream
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass   # not a real fd (captured in tests): nothing will flush it at exit


def main(argv=None):
    out, err = sys.stdout, sys.stderr
    term = signal.getsignal(signal.SIGTERM)   # given back at the end: main() called in-process
    try:
        signal.signal(signal.SIGTERM, _terminate)
        sys.stdout, sys.stderr = _Guarded(out, "standard output"), _Guarded(err, "standard error")
        from ..errors import PyvfioError
        try:
            from . import dispatch
            code = dispatch.run(sys.argv[1:] if argv is None else list(argv))
            sys.stdout.flush()
            return code
        except PyvfioError as exc:
            _say(f"pyvfio: error: {exc}")
            return exc.exit_code
    except KeyboardInterrupt:
        _say("pyvfio: interrupted")
        return EXIT_INTERRUPTED
    except StreamError as failed:
        from ..errors import os_error
        if failed.exc.errno == errno.EPIPE and failed.name == "standard output":
            _silence(out)   # a reader that stopped (`| head`) wants no message
            return EXIT_IO
        _silence(out if failed.name == "standard output" else err)
        disk = failed.exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)   # os_error says what to do
        hint = None if disk else f"check where {failed.name} goes (closed? a terminal gone?)"
        _say(f"pyvfio: error: {os_error('write to', failed.name, failed.exc, hint)}")
        return EXIT_IO
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        if os.environ.get("PYVFIO_DEBUG"):
            import traceback
            traceback.print_exc()
        _say(f"pyvfio: error: {type(exc).__name__}: {exc}: this is a bug: please report it, "
             "PYVFIO_DEBUG=1 shows the traceback")
        return EXIT_BUG
    finally:
        sys.stdout, sys.stderr = out, err
        if term is not None:
            signal.signal(signal.SIGTERM, term)
