# Runs inside the package's own Python process, with the workspace as working directory:
# `from train import Main; m = Main(); m.train('./data'); m.save()`, for any plan of calls.
# It reports to the runner through a pipe (argv[1]); stdout and stderr are the run's logs. The
# package's code can write to that pipe too: the runner trusts none of it (sandbox/reports.py).
# Its plan comes in argv[2], or on stdin when it was started ahead of its run ("-").
# Kept free of imports beyond the standard library: it runs in the package's environment.
# Its imports are part of every run's start: only modules that cost next to nothing (json
# imports re, traceback imports linecache and tokenize: together they would cost as much as
# half of Python's own start). Its arguments come as marshal (built in); its reports are JSON
# lines written by hand.
import errno
import marshal
import math
import os
import resource
import signal
import sys
import time

try:
    from _json import encode_basestring_ascii as _quote  # json's own C quoting, without re
except ImportError:  # not CPython
    from json import dumps as _quote

_channel = os.fdopen(int(sys.argv[1]), "w", buffering=1)
if sys.argv[2] == "-":  # started ahead (runner/ahead.py): its run comes on stdin, if ever
    _arguments = sys.stdin.buffer.read()
    if not _arguments:  # discarded
        sys.exit(0)
    _plan, _limits, _environ = marshal.loads(_arguments)
    _environ.setdefault("PWD", os.environ.get("PWD", os.getcwd()))  # bwrap's, as it started us
    os.environ.clear()
    os.environ.update(_environ)
    _null = os.open(os.devnull, os.O_RDONLY)  # what a cold start's stdin is
    os.dup2(_null, 0)
    os.close(_null)
    __import__("importlib").invalidate_caches()  # train.py came after Python looked at ./
else:
    _plan, _limits = marshal.loads(bytes.fromhex(sys.argv[2]))
sys.argv = sys.argv[:1]

if not _limits["sandboxed"]:  # in a sandbox, bwrap's PID namespace dies with the worker
    try:  # Linux: die with the worker that started us, so a lost worker leaves nothing running
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        del ctypes
    except Exception:  # noqa: BLE001
        pass

# Resource limits, before any of the package's code runs. A file over the size limit makes
# write() fail (EFBIG) instead of killing the process silently with SIGXFSZ.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
for _name, _value in (
    ("RLIMIT_AS", _limits["memory"]),
    ("RLIMIT_FSIZE", _limits["file_size"]),
    ("RLIMIT_NOFILE", _limits["open_files"]),
    ("RLIMIT_NPROC", _limits["processes"]),
):
    if _value:
        resource.setrlimit(getattr(resource, _name), (_value, _value))


def _megabytes(value):
    return f"{value / 1024 / 1024:,.0f} MB"


def _reason(error):
    """The exception line of the user's code, saying so when a limit was the cause."""
    import traceback

    line = "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()
    line = line[-1] if line else type(error).__name__
    if isinstance(error, MemoryError) and _limits["memory"]:
        return f"MemoryError: the run went over its memory limit of {_megabytes(_limits['memory'])}"
    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        return f"{line} (a file went over the size limit of {_megabytes(_limits['file_size'])})"
    if isinstance(error, OSError) and error.errno == errno.EMFILE:
        return f"{line} (over the limit of {_limits['open_files']} open files)"
    if isinstance(error, BlockingIOError) or (
        isinstance(error, OSError) and error.errno == errno.EAGAIN
    ):
        return f"{line} (over the limit of {_limits['processes']} processes)"
    return line


def _json(value):
    """A report's value as JSON: a string, or a finite number (times, scores)."""
    return _quote(value) if isinstance(value, str) else repr(value)


def _send(**message):
    line = ", ".join(f'"{key}": {_json(value)}' for key, value in message.items())
    try:
        _channel.write("{" + line + "}\n")
        _channel.flush()
    except (OSError, ValueError):
        pass  # the package closed our pipe; the exit code still tells the runner


def _timed(name, function, *args):
    _send(event="start", call=name, t=time.time())
    try:
        return function(*args)
    finally:  # a call that raised still shows on the timeline
        _send(event="end", call=name, t=time.time())


def _listing(folder):
    """Every entry under `folder` (and the folder itself) with its size and time of change:
    what a call must leave as it found it. Links are listed, never followed."""
    paths = [folder]
    for parent, folders, files in os.walk(folder):
        paths += [os.path.join(parent, name) for name in folders + files]
    found = set()
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            continue
        found.add((path, info.st_size, info.st_mtime_ns))
    return found


try:
    Main = _timed("import", lambda: __import__("train").Main)
    model = _timed("__init__", Main)
    # A step is [call, argument], or [call, argument, {"unchanged": folder, "reason": text}]:
    # then the call must leave that folder as it found it, or the run ends with that reason.
    for call, argument, *guard in _plan:
        if not callable(getattr(model, call, None)):
            _send(
                event="error",
                reason=(
                    f"train.py: class Main has no method {call}, which this pipeline type calls"
                    + (
                        " (full pipeline runs call process_data(data_directory) first; it writes "
                        "the training and test splits)"
                        if call == "process_data"
                        else ""
                    )
                ),
            )
            sys.exit(3)
        before = _listing(guard[0]["unchanged"]) if guard else None
        result = _timed(call, getattr(model, call), *([] if argument is None else [argument]))
        if guard and _listing(guard[0]["unchanged"]) != before:
            _send(event="error", reason=guard[0]["reason"])
            sys.exit(3)
        if call == "evaluate":
            if isinstance(result, bool) or not isinstance(result, (int, float)):
                _send(
                    event="error",
                    reason=(
                        f"evaluate() must return a number (the score), "
                        f"not {type(result).__name__}: {repr(result)[:100]}"
                    ),
                )
                sys.exit(3)
            if not math.isfinite(result):
                _send(event="error", reason=f"evaluate() returned {result}, not a finite score")
                sys.exit(3)
            _send(event="score", value=float(result))
except SystemExit:
    raise
except BaseException as error:  # noqa: BLE001 - any failure of user code is the run's failure
    import traceback

    traceback.print_exc()
    sys.stderr.flush()
    _send(event="error", reason=_reason(error)[:2000])  # the runner reads no longer line
    sys.exit(1)
