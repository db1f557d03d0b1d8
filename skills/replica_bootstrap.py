# Runs inside a skill replica's own Python process (the package version's environment, in the
# sandbox), with the version's files as working directory: `from main import Main`, one Main(),
# then predict() for each request the skill host hands over on a pipe (argv[1] in, argv[2]
# out), one at a time. A frame is a 4-byte big-endian length, a JSON header, a newline and the
# body. stdout and stderr are the replica's log. Standard library only. The package's code can
# write frames to the same pipe: the host trusts none of them (skills/replica.py checks each).
import json
import os
import resource
import signal
import struct
import sys
import traceback

try:  # Linux: die with the skill host that started us
    import ctypes

    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    del ctypes
except Exception:  # noqa: BLE001
    pass

_in = int(sys.argv[1])
_out = int(sys.argv[2])
_input_type = sys.argv[3]
_limits = json.loads(sys.argv[4])
sys.argv = sys.argv[:1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
for _name, _value in (
    ("RLIMIT_AS", _limits["memory"]),
    ("RLIMIT_FSIZE", _limits["file_size"]),
    ("RLIMIT_NOFILE", _limits["open_files"]),
    ("RLIMIT_NPROC", _limits["processes"]),
):
    if _value:
        resource.setrlimit(getattr(resource, _name), (_value, _value))


def _send(header, body=b""):
    payload = json.dumps(header).encode() + b"\n" + body
    data = struct.pack(">I", len(payload)) + payload
    while data:
        data = data[os.write(_out, data) :]


def _exactly(count):
    parts = []
    while count:
        part = os.read(_in, min(count, 1 << 20))
        if not part:
            return None
        parts.append(part)
        count -= len(part)
    return b"".join(parts)


def _receive():
    size = _exactly(4)
    return None if size is None else _exactly(struct.unpack(">I", size)[0])


def _reason(error):
    line = "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()
    return (line[-1] if line else type(error).__name__)[:2000]


def _argument(body):
    if _input_type == "json":
        return body.decode("utf-8", errors="replace")
    if _input_type == "files":  # several files: a list of their bytes
        header, _, rest = body.partition(b"\n")
        sizes, files = json.loads(header), []
        for size in sizes:
            files.append(rest[:size])
            rest = rest[size:]
        return files
    return body


try:
    model = __import__("main").Main()
except BaseException as error:  # noqa: BLE001 - the version can't load: say why, end
    traceback.print_exc()
    sys.stderr.flush()
    _send({"event": "failed", "reason": _reason(error)})
    sys.exit(1)
sys.stdout.flush()
_send({"event": "ready"})

while True:
    frame = _receive()
    if frame is None:  # the host closed the pipe: stop
        break
    try:
        result = model.predict(_argument(frame))
        if isinstance(result, str):
            header, body = {"status": 200, "type": "text"}, result.encode("utf-8", "replace")
        elif isinstance(result, (bytes, bytearray)):
            header, body = {"status": 200, "type": "bytes"}, bytes(result)
        else:
            header, body = {"status": 200, "type": "json"}, json.dumps(result).encode()
    except Exception as error:  # noqa: BLE001 - predict raising is the caller's 422
        traceback.print_exc()
        header, body = {"status": 422, "detail": _reason(error)}, b""
    sys.stdout.flush()
    sys.stderr.flush()
    _send(header, body)
