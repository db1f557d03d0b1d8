"""Writes that wait out a locked SQLite database instead of failing.

SQLite lets one connection write at a time: the others wait for the busy timeout (20 s, see
settings) and then get OperationalError "database is locked". For a web request that is a 500
the user can retry; for a run's own writes (its status, its log) it would fail a healthy run
because of a platform hiccup. Those writes go through retry_when_locked. PostgreSQL never says
"database is locked", so there it only calls the function.
"""

import logging
import time

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections

logger = logging.getLogger(__name__)

# A locked database is tried again after 0.1 s, then 0.2, 0.4 … at most 2 s apart: SQLite's
# writes take milliseconds, a long one (a 1,000-file upload) about a second.
FIRST_PAUSE = 0.1
LONGEST_PAUSE = 2.0
# How long a caller waits out a locked database by default before the error goes up: longer
# than any write this app makes, short enough that a stuck one is noticed.
LOCKED_WAIT_SECONDS = 60.0


def is_locked(error: Exception) -> bool:
    return isinstance(error, OperationalError) and "locked" in str(error)


def retry_when_locked(
    function, *, seconds: float = LOCKED_WAIT_SECONDS, using: str = DEFAULT_DB_ALIAS
):
    """Call `function()` and return its result. While it fails because the database is
    locked, call it again after a pause that doubles from 0.1 s up to 2 s, until `seconds`
    have passed; then the last error goes up.

    `function` must be safe to call again after such a failure: its writes in one statement or
    in a transaction of its own (`transaction.atomic()` inside it), nothing else done before
    them. Inside a caller's transaction nothing is retried: a failed statement has spoilt the
    transaction, so the error goes up at once."""
    deadline = time.monotonic() + seconds
    pause = FIRST_PAUSE
    attempt = 1
    while True:
        try:
            return function()
        except OperationalError as error:
            left = deadline - time.monotonic()
            if not is_locked(error) or connections[using].in_atomic_block or left <= 0:
                raise
            logger.warning(
                "the database is locked (attempt %d); trying again in %.1f s", attempt, pause
            )
        time.sleep(min(pause, left))  # the last try comes at the deadline
        pause = min(pause * 2, LONGEST_PAUSE)
        attempt += 1
