"""The platform's housekeeping: chores that keep every app tidy (lost webhook deliveries queued
again, old ML Logs deleted, unreferenced storage reclaimed, ...). Each app registers its own in
its AppConfig.ready; the workers' sweep (pipelines/sweeper.py) runs them all, one worker at a
time, every few seconds. So the sweeper knows no app above it, and a new app's chore needs no
change anywhere else.

A chore must be quick (the sweep holds a Redis lock of seconds): one that is costly keeps its
own clock and does its work hourly, say, returning at once in between."""

from collections.abc import Callable

# name → chore, in the order registered (apps are ready in INSTALLED_APPS' order).
_chores: dict[str, Callable[[], object]] = {}


def register(name: str, chore: Callable[[], object]) -> None:
    """Add a chore; registering a name again replaces it (ready() may run more than once)."""
    _chores[name] = chore


def chores() -> list[str]:
    return list(_chores)


def run_chores() -> None:
    for chore in list(_chores.values()):
        chore()
