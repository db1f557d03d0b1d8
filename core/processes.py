"""Whether a process of this machine still runs: workers, builds and sandboxes started ahead
are known by their pid, and what they leave is cleaned up only once they are gone."""

import os


def process_alive(pid: int) -> bool:
    """The kernel's answer; a process of another user counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
