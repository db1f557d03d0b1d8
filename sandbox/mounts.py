"""What a sandbox sees of the machine: bwrap's mount options, the folders above each mount
made first and crossable."""

import os
from pathlib import Path

# What of /etc a Python process may need: the dynamic linker's cache, TLS certificates, time
# zones, name service switch. Nothing else of the host's configuration.
ETC = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "ssl",
    "ca-certificates",
    "localtime",
    "nsswitch.conf",
    "mime.types",
    "fonts",
)
ETC_WITH_NETWORK = ("hosts", "resolv.conf", "gai.conf", "host.conf")
INSTALLER_ETC = ("pip.conf", "xdg/pip")


class Mounts:
    """bwrap's mount options (`args`), in the order they are added."""

    def __init__(self):
        self.args: list[str] = []
        self.made = {"/"}

    def place(self, *options_and_paths):
        """Mount something at the last path, with the folders above it made first and
        crossable (left to itself, bwrap makes them 0700: nothing in them reachable)."""
        dest = options_and_paths[-1]
        for parent in reversed(Path(dest).parents):
            if str(parent) not in self.made:
                self.made.add(str(parent))
                self.args.extend(["--perms", "0755", "--dir", str(parent)])
        self.made.add(dest)
        self.args.extend(options_and_paths)

    def system(self, *, memory):
        """/proc, /dev, private temporary folders, and the system's programs read-only."""
        self.place("--proc", "/proc")
        self.place("--dev", "/dev")
        # private, in memory: no bigger than the run's memory (a cgroup counts them in it)
        size = ["--size", str(memory)] if memory else []
        for private in ("/tmp", "/var/tmp", "/dev/shm"):
            self.place("--perms", "1777", *size, "--tmpfs", private)
        self.place("--ro-bind", "/usr", "/usr")
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                self.place("--symlink", os.readlink(top), top)
            elif os.path.isdir(top):
                self.place("--ro-bind", top, top)

    def etc(self, *, network, installer):
        """The few files of /etc it needs (name resolution with the network, pip's with an
        installer)."""
        names = ETC + (ETC_WITH_NETWORK if network else ()) + (INSTALLER_ETC if installer else ())
        for name in names:
            if os.path.exists(f"/etc/{name}"):
                self.place("--ro-bind", f"/etc/{name}", f"/etc/{name}")

    def devices(self, *, gpu):
        """GPUs when asked for; else only the CPU counts numpy, joblib and friends read."""
        if gpu:
            self.place("--ro-bind", "/sys", "/sys")
            for device in sorted(Path("/dev").glob("nvidia*")):
                self.args.extend(["--dev-bind", str(device), str(device)])
        elif os.path.isdir("/sys/devices/system/cpu"):
            self.place("--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu")

    def folders(self, *, readable, writable):
        for option, folders in (("--ro-bind", readable), ("--bind", writable)):
            for folder in folders:
                if not folder.startswith("/usr/"):  # /usr is there already, read-only
                    self.place(option, folder, folder)
