"""Package code asks the kernel for what no sandbox gives it (sandbox/syscall_filter.py):
the kernel's keyrings, which are its uid's and outlive the run (the uid's next holder would
read them: add_key, then keyctl search), and new user namespaces (uid 0 with every capability
inside one: the kernel's surface for root, open to code that is nobody). A syscall of another
ABI (x32, i386 through int 0x80) kills the process. Runs and sandboxes started ahead here; a
build's code in test_sandbox_builds.py, a skill's replica in tests/skills/test_skills_sandbox.py.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import ctypes
import json
import platform

import pytest

from pipelines.runner import ahead
from sandbox import sandbox, syscall_filter
from tests.pipelines.sandboxing import (
    KERNEL_ATTEMPTS,
    assert_kernel_refused,
    files_of,
    log_of,
    run_here,
    train_py,
)

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

TRIES = train_py(
    '(OUT / "kernel.json").write_text(json.dumps(kernel_attempts()))', imports=KERNEL_ATTEMPTS
)


def answers(run) -> dict:
    assert run.status == "successful", (run.failure_reason, log_of(run))
    return json.loads(files_of(run.artifacts)["kernel.json"])


def test_a_run_gets_no_keyring_and_no_user_namespace_of_its_own(db, project, bob):
    run = run_here(project, bob, "", source=TRIES)
    assert_kernel_refused(answers(run))
    assert run.sandbox["seccomp"]
    assert "no keyrings, no new user namespaces (seccomp)" in run.sandbox_summary


def test_a_sandbox_started_ahead_is_filtered_as_a_cold_one(db, project, bob):
    ahead.discard()
    try:
        run_here(project, bob, "", source=TRIES, go_ahead=True)
        run = run_here(project, bob, "", source=TRIES, name="again", go_ahead=True)
        assert "(started ahead)" in log_of(run)
        assert_kernel_refused(answers(run))
    finally:
        ahead.discard()


def test_on_another_architecture_a_worker_refuses_to_run_package_code(monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(platform, "machine", lambda: "riscv64")
        sandbox.status.cache_clear()
        try:
            refusal = sandbox.refusal()
        finally:
            sandbox.status.cache_clear()
    assert "seccomp filter is made for x86_64 and aarch64, not riscv64" in refusal
    assert "AICENTER_SANDBOX=off" in refusal


def test_the_filters_syscall_numbers_are_libseccomps(monkeypatch):
    """Checked against libseccomp's tables where it is installed (the filter doesn't need it)."""
    try:
        libseccomp = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        pytest.skip("no libseccomp here to check against")
    resolve = libseccomp.seccomp_syscall_resolve_name_arch
    resolve.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    for machine, (audit_arch, numbers) in syscall_filter.MACHINES.items():
        for name, number in numbers.items():
            assert resolve(audit_arch, name.encode()) == number, (machine, name)
        with monkeypatch.context() as patch:
            patch.setattr(platform, "machine", lambda machine=machine: machine)
            syscall_filter.program.cache_clear()
            assert len(syscall_filter.program()) % 8 == 0  # every jump's label is known
        syscall_filter.program.cache_clear()
