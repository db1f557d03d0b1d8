"""Helpers of the sandbox tests (test_sandbox_*.py): each test is one way hostile package code
tried to get out (issue 8's security review), run for real (bubblewrap, cgroups, uids, real
processes), and what stopped it. Their fixtures (sandbox_available, secret_file) are in
tests/pipelines/conftest.py.

Runs that need no worker go through the runner in this process (run_here), so a test can change
the worker's settings; the others go through real workers."""

import io
import os
from pathlib import Path

from core.blobs import blob_open
from core.models import Blob
from datasets.services import dataset_create, dataset_file_put
from packages.services import package_create
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create
from tests.conftest import upload
from tests.factories import package_zip

API = "/api/v1/projects/alpha"
SECRET = "TOPSECRET-not-for-package-code"


def train_py(train: str, save: str = "pass", imports: str = "") -> str:
    indented = "\n".join("        " + line for line in train.strip().splitlines())
    saved = "\n".join("        " + line for line in save.strip().splitlines())
    return f"""\
import json, os, socket, subprocess, sys, time
from pathlib import Path
{imports}

ENV = os.environ
OUT = Path(ENV["artifacts_directory"])


def attempt(action):
    try:
        result = action()
        return "done" if result is None else result
    except Exception as error:
        return type(error).__name__


class Main:
    def __init__(self):
        OUT.mkdir(exist_ok=True)

    def train(self, data_directory):
{indented}

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
{saved}
"""


def run_here(
    project,
    user,
    train,
    *,
    save="pass",
    parameters=None,
    name="attack",
    source=None,
    go_ahead=False,
    requirements="",
):
    """Upload a package with this train() and save() (or train.py's whole `source`) and
    requirements.txt, run it in this process, return the run. `go_ahead`: as a worker does, it
    may take the sandbox started ahead, and starts one for the next run (runner/ahead.py)."""
    files = {"train.py": source or train_py(train, save), "requirements.txt": requirements}
    package_create(project=project, user=user, name=name, file=upload(content=package_zip(**files)))
    if not project.datasets.filter(name="d").exists():
        dataset = dataset_create(project=project, user=user, name="d")
        dataset_file_put(user=user, dataset=dataset, path="a.csv", fileobj=io.BytesIO(b"1,2\n"))
    run = pipeline_run_create(
        project=project,
        user=user,
        type="train",
        package=name,
        version="1.0",
        dataset="d",
        parameters=parameters or {},
    )
    run_pipeline(run, go_ahead=go_ahead)
    run.refresh_from_db()
    return run


def log_of(run) -> str:
    return "".join(run.log_chunks.order_by("seq").values_list("text", flat=True))


def files_of(manifest) -> dict[str, bytes]:
    if manifest is None:
        return {}
    found = {}
    for entry in manifest.entries.exclude(blob=None).select_related("blob"):
        with blob_open(entry.blob) as stored:
            found[entry.path] = stored.read()
    return found


def no_blob_holds(text: str) -> bool:
    for blob in Blob.objects.all():
        with blob_open(blob) as stored:
            if text.encode() in stored.read():
                return False
    return True


def path_without_bwrap(folder: Path) -> str:
    """The PATH, each of its folders that holds a bwrap replaced by a copy (links) without it."""
    entries = []
    for index, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        if not os.path.exists(os.path.join(entry, "bwrap")):
            entries.append(entry)
            continue
        mirror = folder / str(index)
        mirror.mkdir(mode=0o755)
        for tool in os.listdir(entry):
            if tool != "bwrap":
                os.symlink(os.path.join(entry, tool), mirror / tool)
        entries.append(str(mirror))
    return os.pathsep.join(entries)


# What package code asks the kernel for that a sandbox refuses (test_sandbox_syscalls.py, and a
# skill's replica in tests/skills/test_skills_sandbox.py): each call made by a Python of its
# own, which prints the answer ("ok", an errno's name) or is killed ("killed by signal 31").
KERNEL_ATTEMPTS = '''
import ctypes, errno, os, platform, subprocess, sys

_ATTEMPT = r"""
import ctypes, errno, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
long = ctypes.c_long
NR = %(numbers)r
USER_KEYRING = -4  # KEY_SPEC_USER_KEYRING
NEWUSER = 0x10000000  # CLONE_NEWUSER
def call(number, *args):
    ctypes.set_errno(0)
    result = libc.syscall(long(number), *args)
    if result == 0 and what == "clone":  # the child
        os._exit(0)
    print("ok" if result >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"), flush=True)
    return result
what = sys.argv[1]
if what == "add_key":
    call(NR["add_key"], b"user", b"aicenter-probe", b"secret", long(6), long(USER_KEYRING))
elif what == "keyctl":  # KEYCTL_GET_KEYRING_ID of the uid's keyring, made if need be
    call(NR["keyctl"], long(0), long(USER_KEYRING), long(1))
elif what == "request_key":
    call(NR["request_key"], b"user", b"aicenter-probe", None, long(0))
elif what == "unshare":
    call(NR["unshare"], long(NEWUSER))
elif what == "clone":  # like fork, in a new user namespace
    call(NR["clone"], long(NEWUSER | 17), long(0), long(0), long(0), long(0))
elif what == "clone3":  # no arguments: the kernel says EINVAL, a filter ENOSYS
    call(NR["clone3"], None, long(0))
elif what == "setns":
    call(NR["setns"], long(os.open("/proc/self/ns/user", os.O_RDONLY)), long(NEWUSER))
elif what == "x32":  # getpid of the x32 ABI
    call(0x40000000 | 39)
elif what == "i386":  # getpid through int 0x80, the i386 ABI: mov eax, 20; int 0x80; ret
    code = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(bytes.fromhex("b814000000cd80c3"))
    address = ctypes.addressof(ctypes.c_char.from_buffer(code))
    result = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
    print("ok" if result > 0 else errno.errorcode.get(-result, "?"), flush=True)
"""
_NUMBERS = {
    "x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
               "clone": 56, "clone3": 435, "setns": 308},
    "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97,
                "clone": 220, "clone3": 435, "setns": 268},
}


def kernel_attempts():
    """{call: its answer} for every call a sandbox refuses, and `unshare -Ur true`'s code."""
    machine = platform.machine()
    program = _ATTEMPT % {"numbers": _NUMBERS[machine]}
    calls = ["add_key", "keyctl", "request_key", "unshare", "clone", "clone3", "setns"]
    if machine == "x86_64":
        calls += ["x32", "i386"]
    answers = {}
    for what in calls:
        done = subprocess.run([sys.executable, "-c", program, what], capture_output=True,
                              text=True, timeout=60)
        answers[what] = (
            f"killed by signal {-done.returncode}" if done.returncode < 0
            else done.stdout.strip() or done.stderr.strip()[-200:]
        )
    try:
        answers["unshare -Ur"] = subprocess.run(
            ["unshare", "-Ur", "true"], capture_output=True, timeout=60
        ).returncode
    except OSError as error:
        answers["unshare -Ur"] = type(error).__name__
    return answers
'''
# What a sandbox answers them (SIGSYS is signal 31 on x86_64 and aarch64).
KERNEL_REFUSED = {
    "add_key": "EPERM",
    "keyctl": "EPERM",
    "request_key": "EPERM",
    "unshare": "EPERM",
    "clone": "EPERM",
    "clone3": "ENOSYS",
    "setns": "EPERM",
    "x32": "killed by signal 31",
    "i386": "killed by signal 31",
}


def assert_kernel_refused(found: dict) -> None:
    """kernel_attempts()'s answers are a sandbox's."""
    expected = {call: KERNEL_REFUSED[call] for call in found if call in KERNEL_REFUSED}
    assert {call: found[call] for call in expected} == expected
    assert found["unshare -Ur"] != 0  # util-linux's way to uid 0 in a namespace of its own
