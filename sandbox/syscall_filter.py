"""The seccomp filter of every sandbox (bwrap --seccomp): what package code may not ask the kernel.

- add_key, request_key, keyctl: EPERM. A kernel keyring is its uid's and outlives every process
  of it (the uid's keyring lasts until the machine reboots), so a run could leave keys for the
  uid's next holder, or read what an earlier holder left.
- New user namespaces: unshare or clone with CLONE_NEWUSER, EPERM. Inside one a process is uid
  0 with every capability over it: the kernel's surface for root, open to code that is nobody.
  setns: EPERM too (no package joins namespaces). clone3: ENOSYS, as on kernels before 5.3: its
  flags are in memory, which a filter can't read, and libc then falls back to clone, whose
  flags it can.
- A syscall of another ABI than the machine's own (x32 or i386's int 0x80 on x86_64, arm32 on
  aarch64) kills the process: its numbers name other calls, so it would go round the rest.

The filter is a classic BPF program assembled here, for x86_64 and aarch64: two dozen
instructions over two syscall tables that Linux never renumbers. libseccomp (through pyseccomp)
would compile the same from the calls' names, but it would make a C library that minimal images
lack a condition of having a sandbox, through a ctypes binding last released in 2021: this
needs neither, only a kernel with seccomp filters, which bwrap then checks as it loads the
filter. On another architecture there is no filter, and a worker refuses to run package code,
saying so (sandbox.refusal()), unless the operator set AICENTER_SANDBOX=off.
"""

import functools
import platform
import struct
import sys

# struct seccomp_data: the syscall's number, its ABI, then its arguments (the low half of the
# first at offset 16 on these little-endian machines).
NR, ARCH, FIRST_ARGUMENT = 0, 4, 16
# Classic BPF: load a word of seccomp_data; jump when equal, greater or equal, any bit set;
# return an action.
LOAD, JUMP_EQ, JUMP_GE, JUMP_SET, RETURN = 0x20, 0x15, 0x35, 0x45, 0x06
ALLOW, ERRNO, KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
EPERM, ENOSYS = 1, 38
CLONE_NEWUSER = 0x10000000
X32_BIT = 0x40000000  # x32's syscalls are x86_64's ABI with this bit set
KEYRINGS = ("add_key", "request_key", "keyctl")
MACHINES = {
    # AUDIT_ARCH_*, and the numbers of the calls the filter looks at
    "x86_64": (
        0xC000003E,
        {"add_key": 248, "request_key": 249, "keyctl": 250, "setns": 308, "unshare": 272}
        | {"clone": 56, "clone3": 435},
    ),
    "aarch64": (
        0xC00000B7,
        {"add_key": 217, "request_key": 218, "keyctl": 219, "setns": 268, "unshare": 97}
        | {"clone": 220, "clone3": 435},
    ),
}
DESCRIPTION = "no keyrings, no new user namespaces (seccomp)"


def problem() -> str:
    """Why this machine gets no filter ('' when it does)."""
    if platform.machine() in MACHINES and sys.byteorder == "little":
        return ""
    return (
        f"the sandbox's seccomp filter is made for x86_64 and aarch64, not {platform.machine()}"
        ": package code can't be sandboxed here. Run the worker on one of those, or set "
        "AICENTER_SANDBOX=off to run package code unsandboxed at your own risk"
    )


@functools.cache
def program() -> bytes:
    """The filter for this machine, as bwrap --seccomp reads it (struct sock_filter[])."""
    audit_arch, number = MACHINES[platform.machine()]
    code = [(LOAD, ARCH), (JUMP_EQ, audit_arch, None, "kill"), (LOAD, NR)]
    if platform.machine() == "x86_64":
        code += [(JUMP_GE, X32_BIT, "x32", None)]
    code += [(JUMP_EQ, number[name], "eperm", None) for name in (*KEYRINGS, "setns")]
    code += [
        (JUMP_EQ, number["clone3"], "enosys", None),
        (JUMP_EQ, number["unshare"], "flags", None),
        (JUMP_EQ, number["clone"], "flags", None),
        (RETURN, ALLOW),
        "flags",
        (LOAD, FIRST_ARGUMENT),
        (JUMP_SET, CLONE_NEWUSER, "eperm", None),
        (RETURN, ALLOW),
        "x32",  # -1 is no call: ptrace's way of skipping one, which the kernel answers ENOSYS
        (JUMP_EQ, 0xFFFFFFFF, None, "kill"),
        (RETURN, ALLOW),
        "eperm",
        (RETURN, ERRNO | EPERM),
        "enosys",
        (RETURN, ERRNO | ENOSYS),
        "kill",
        (RETURN, KILL_PROCESS),
    ]
    return assemble(code)


def assemble(code: list) -> bytes:
    """Instructions and labels into BPF: (op, k) or (jump, k, label when true, label when
    false), None meaning the next instruction; a str marks where a label points."""
    where, count = {}, 0
    for item in code:
        if isinstance(item, str):
            where[item] = count
        else:
            count += 1
    out, index = [], 0
    for item in code:
        if isinstance(item, str):
            continue
        op, k, *targets = item
        offsets = [0 if target is None else where[target] - index - 1 for target in targets]
        true, false = offsets or (0, 0)
        out.append(struct.pack("=HBBI", op, true, false, k))
        index += 1
    return b"".join(out)
