from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The kit that runs package code shut in (bubblewrap, cgroups, disks, uids, workspaces);
    pipelines and skills use it. It knows no run or skill: it says how a process ended, and
    its callers say what that means."""

    name = "sandbox"
    verbose_name = "Sandboxes"
