# Runs inside the package's own Python process, with the workspace as working directory:
# the seed's `from train import Main; m = Main(); m.train('./data'); m.save()`, for any plan.
# It reports to the runner through a pipe (argv[1]); stdout and stderr are the run's logs.
# Kept free of imports beyond the standard library: it runs in the package's environment.
import json
import math
import os
import sys
import time
import traceback

try:  # Linux: die with the worker that started us, so a lost worker leaves nothing running
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    del ctypes, signal
except Exception:  # noqa: BLE001
    pass

_channel = os.fdopen(int(sys.argv[1]), "w", buffering=1)
_plan = json.loads(sys.argv[2])
sys.argv = sys.argv[:1]


def _send(**message):
    try:
        _channel.write(json.dumps(message) + "\n")
        _channel.flush()
    except (OSError, ValueError):
        pass  # the package closed our pipe; the exit code still tells the runner


def _timed(name, function, *args):
    _send(event="start", call=name, t=time.time())
    result = function(*args)
    _send(event="end", call=name, t=time.time())
    return result


try:
    Main = _timed("import", lambda: __import__("train").Main)
    model = _timed("__init__", Main)
    for call, argument in _plan:
        result = _timed(call, getattr(model, call), *([] if argument is None else [argument]))
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
    traceback.print_exc()
    sys.stderr.flush()
    reason = "".join(traceback.format_exception_only(type(error), error)).strip()
    _send(event="error", reason=reason.splitlines()[-1] if reason else type(error).__name__)
    sys.exit(1)
