"""The uids sandboxes run as: leased from the database, so that no two holders share one and no
holder gets a uid while anything of its last holder can remain.

AICENTER_SANDBOX_UIDS is cut in parts: its first uid for probes that run no package code (can
bwrap make a sandbox here, can a uid start that Python), then 3/8 of the rest for runs, 3/8 for
sandboxes started ahead, 1/8 for environment builds (a uid per build) and the last 1/8 for skill
replicas. Only a root worker leases: one that isn't runs package code as itself, in a user
namespace.

- Which uid comes next: a counter per kind (SandboxUidCounter) in the database every machine
  shares, advanced by one UPDATE … RETURNING, goes round the kind's part, so a uid comes back
  only after every other uid of its part was handed out. Never Redis, which may come back empty.
- The lease (SandboxUid, a row per uid) is claimed by one INSERT … ON CONFLICT DO UPDATE …
  WHERE NOT held: of two workers after one uid, on any machines, one gets it and the other
  goes on to the next.
- A uid some process still has on this machine is skipped, whatever its lease says. The kernel
  says: getpriority(PRIO_USER, uid) looks at every process of this PID namespace and answers
  ESRCH when none has that real uid (microseconds, zombies and processes that hide from /proc
  included).
- A holder gives its uid back (Lease.release) when its sandbox is over: only once its workspace
  is gone and no process of the uid is left. Else the lease stays held, and the sweeper of the
  holder's machine gives it back once that is so (release_left): the uid of a worker killed
  mid-run, of a run whose workspace removal failed, of a daemon of a run without sandbox.

A run pays a transaction of two statements for its lease and one to give it back, neither
waiting for the disk (below); a sandbox started ahead leases off the run's path.
"""

import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.database import retry_when_locked
from core.processes import process_alive
from sandbox.models import SandboxUid, SandboxUidCounter
from sandbox.workspace import workspace_folders

logger = logging.getLogger(__name__)
RUN, AHEAD, BUILD, REPLICA = "run", "ahead", "build", "replica"
# Eighths of the range after the probes' uid; replicas take what rounding leaves.
SHARES = ((RUN, 3), (AHEAD, 3), (BUILD, 1), (REPLICA, 1))
# A sandbox just stopped is gone a moment later (its PID namespace ending, its processes
# reaped): a holder giving its uid back waits this long for the uid's last process.
GONE_WAIT_SECONDS = 0.5
GONE_POLL_SECONDS = 0.005

ADVANCE = "UPDATE {counter} SET position = position + 1 WHERE kind = %s RETURNING position"
START = "INSERT INTO {counter} (kind, position) VALUES (%s, 0) ON CONFLICT (kind) DO NOTHING"
CLAIM = (
    "INSERT INTO {uids} AS lease (uid, kind, held, host, pid, holder, changed_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (uid) DO UPDATE SET kind = excluded.kind, "
    "held = excluded.held, host = excluded.host, pid = excluded.pid, holder = excluded.holder, "
    "changed_at = excluded.changed_at WHERE NOT lease.held"
)
RELEASE = (
    "UPDATE {uids} SET held = %s, changed_at = %s "
    "WHERE uid = %s AND holder = %s AND host = %s AND held"
)


class UidsExhausted(Exception):
    """Every uid of a kind's part is held or in use."""


def probe_uid() -> int:
    """The uid of probes that run nothing of a package's; no sandbox ever gets it."""
    return settings.SANDBOX_UIDS[0]


def part(kind: str) -> range:
    """The uids of AICENTER_SANDBOX_UIDS that `kind` is given."""
    first, last = settings.SANDBOX_UIDS
    eighth = (last - first) // 8
    start = first + 1
    for name, share in SHARES:
        end = last + 1 if name == REPLICA else start + share * eighth
        if name == kind:
            return range(start, end)
        start = end
    raise ValueError(f"no such kind of sandbox: {kind}")


def in_use(uid: int) -> bool:
    """Does a process with this real uid live on this machine (in this PID namespace)?"""
    try:
        os.getpriority(os.PRIO_USER, uid)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Lease:
    uid: int
    holder: str  # its workspace's name (made before the lease); a build's own name
    held: bool = True  # False once given back, or when nothing was leased (worker not root)

    def release(self, wait: float = GONE_WAIT_SECONDS) -> bool:
        """Give the uid back if nothing of its holder is left here: its workspace gone and no
        process of the uid (waiting up to `wait` seconds for the last). True when given back;
        else the lease stays held until the sweeper finds it so (release_left)."""
        if not self.held:
            return True
        if workspace_folders(self.holder) or _lives_on(self.uid, wait):
            return False
        params = [False, _now(), self.uid, self.holder, socket.gethostname()]
        retry_when_locked(lambda: self._release(params))
        self.held = False
        return True

    def _release(self, params: list) -> None:
        with _transaction() as cursor:
            cursor.execute(_sql(RELEASE), params)


def lease(kind: str, holder: str) -> Lease:
    """A uid of `kind`'s part for `holder`. Raises UidsExhausted when none is free."""
    if os.geteuid() != 0:
        return Lease(os.geteuid(), holder, held=False)
    uids = part(kind)
    uid = retry_when_locked(lambda: _lease(kind, holder, uids))
    if uid is None:
        raise UidsExhausted(
            f"every uid for {kind}s in AICENTER_SANDBOX_UIDS ({uids.start}-{uids.stop - 1}) is "
            "held or has a process: widen the range, or end the processes of those uids"
        )
    return Lease(uid, holder)


def _lease(kind: str, holder: str, uids: range) -> int | None:
    with _transaction() as cursor:
        for _ in uids:
            uid = uids[_advance(cursor, kind) % len(uids)]
            if not in_use(uid) and _claim(cursor, uid, kind, holder):
                return uid
    return None


def release_left() -> None:
    """The sweeper's: give back the uids this machine's holders could not (a worker killed,
    a workspace whose removal failed, a process that outlived its run without sandbox) once
    nothing of theirs is left. A build's holder has no workspace: its process must be gone."""
    if os.geteuid() != 0:
        return
    held = SandboxUid.objects.filter(held=True, host=socket.gethostname())
    for uid, kind, pid, holder in held.values_list("uid", "kind", "pid", "holder"):
        if kind == BUILD and process_alive(pid):
            continue
        if Lease(uid, holder).release(wait=0):
            logger.info("sandbox uid %s of %s given back", uid, holder)


def _lives_on(uid: int, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while in_use(uid):
        if time.monotonic() >= deadline:
            return True
        time.sleep(GONE_POLL_SECONDS)
    return False


@contextmanager
def _transaction():
    """A cursor in a transaction of its own. On PostgreSQL its commit does not wait for the
    disk (synchronous_commit off, a few milliseconds less on a run's path): a crash of the
    database could lose the last leases and give-backs, and then a uid's lease would say free
    while its sandbox runs, but no uid with a process is handed out on its machine anyway, and a
    lost give-back is the sweeper's to do again."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield cursor


def _advance(cursor, kind: str) -> int:
    """The kind's counter, moved on by one: its position before."""
    cursor.execute(_sql(ADVANCE), [kind])
    rows = cursor.fetchall()
    if not rows:  # the kind's first lease
        cursor.execute(_sql(START), [kind])
        cursor.execute(_sql(ADVANCE), [kind])
        rows = cursor.fetchall()
    return rows[0][0] - 1


def _claim(cursor, uid: int, kind: str, holder: str) -> bool:
    params = [uid, kind, True, socket.gethostname(), os.getpid(), holder, _now()]
    cursor.execute(_sql(CLAIM), params)
    return cursor.rowcount == 1


def _sql(statement: str) -> str:
    return statement.format(
        counter=connection.ops.quote_name(SandboxUidCounter._meta.db_table),
        uids=connection.ops.quote_name(SandboxUid._meta.db_table),
    )


def _now():
    return connection.ops.adapt_datetimefield_value(timezone.now())
