"""A skill host (`manage.py skillhost`): keeps the replicas the database wants on this
machine. Every tick it says it is alive, frees the replicas of hosts that went silent, follows
auto-updating skills to their newest version, claims missing replica slots (the unique
constraint on a slot is the claim, so two hosts never start the same replica), stops the
replicas nobody wants any more, and moves a skill's traffic to a new version once all its
replicas have loaded. Each replica has a thread that pulls the skill's calls from Redis while
its version is the one serving, and answers them."""

import collections
import logging
import math
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from sandbox import sandbox_uids
from sandbox.workspace import Workspace
from skills import channel, transitions
from skills.models import Skill, SkillHost, SkillReplica
from skills.replica import Replica, ReplicaFailed, ReplicaTimeout
from skills.stats import record_calls

logger = logging.getLogger(__name__)
# How often the host looks at the database.
TICK_SECONDS = 0.5
# A replica waits this long for new calls before it looks around (heartbeat, stop, crash).
PULL_SECONDS = 1.0
# A replica that failed to restart waits this long before trying again.
RESTART_PAUSE_SECONDS = 2.0
# A stopping replica finishes its call in flight for at most this long.
STOP_GRACE_SECONDS = 5.0


class Slot(threading.Thread):
    """One replica this host runs, and the thread that feeds it calls."""

    def __init__(self, host, row: SkillReplica, skill: Skill):
        super().__init__(name=f"skill-{skill.pk}-replica-{row.pk}", daemon=True)
        self.host, self.row_id, self.skill_id = host, row.pk, skill.pk
        self.version_id = row.version_id
        self.member = f"{host.name}/{row.pk}"  # its name in the skill's ready set
        self.replica = Replica(
            key=row.pk,
            version=row.version,
            gpu_devices=settings.CUDA_VISIBLE_DEVICES if skill.gpu else "",
        )
        self.pulling = False  # its version serves: take calls
        self.stopping = threading.Event()
        self.loaded = False

    def run(self):
        try:
            self._serve()
        except Exception:  # a platform failure: this replica goes; the host starts another
            logger.exception("replica %s failed in the platform", self.member)
        finally:
            close_old_connections()
            channel.say_gone(channel.connection(), self.skill_id, self.member)
            self.replica.stop(STOP_GRACE_SECONDS)
            self.host.forget(self)

    def _load(self) -> bool:
        try:
            self.replica.start()
        except ReplicaFailed as error:
            logger.warning("replica %s failed to load: %s", self.member, error.reason)
            self.host.pause(self.skill_id, self.version_id)
            transitions.replica_failed(row_id=self.row_id, reason=error.reason, loaded=self.loaded)
            return False
        first, self.loaded = not self.loaded, True
        transitions.replica_ready(self.row_id)
        if not first:
            logger.info("replica %s restarted", self.member)
        return True

    def _serve(self):
        client = channel.connection()
        if not self._load():
            return
        said = 0.0
        while not self.stopping.is_set():
            if not self.replica.alive():  # crashed: restart it (within PULL_SECONDS)
                channel.say_gone(client, self.skill_id, self.member)
                transitions.replica_restarting(self.row_id)
                self.replica.stop()
                self.replica = Replica(
                    key=self.row_id, version=self.replica.version,
                    gpu_devices=self.replica.gpu_devices,
                )  # fmt: skip
                if not self._load():
                    return
                said = 0.0
            try:
                if time.monotonic() - said > 1.0:
                    channel.say_ready(client, self.skill_id, self.member)
                    said = time.monotonic()
                if not self.pulling:
                    self.stopping.wait(0.1)
                    continue
                popped = client.blpop([channel.requests_key(self.skill_id)], PULL_SECONDS)
                if popped is not None:
                    self._take(client, popped[1])
            except redis.RedisError:  # Redis away for a moment: the replica waits, loaded
                logger.warning("replica %s: Redis unreachable, trying again", self.member)
                self.stopping.wait(1.0)

    def _take(self, client, message: bytes):
        """Relay a call to the replica, if the web server sent it (its signature verifies)."""
        try:
            header, body = channel.decode(message, to=channel.requests_key(self.skill_id))
        except channel.BadSignature:
            logger.warning(
                "replica %s: dropped a call whose signature doesn't verify (not sent by this "
                "installation's web server)",
                self.member,
            )
            return
        self._answer(client, header, body)

    def _answer(self, client, header: dict, body: bytes):
        left = header.get("deadline", 0) - time.time()
        if left <= 0:
            return  # its caller gave up already
        try:
            answer, result = self.replica.call(body, timeout=left)
        except ReplicaTimeout:
            answer, result = {"status": 504, "detail": f"No answer within {left:.0f} s."}, b""
        except ReplicaFailed as error:
            answer, result = {"status": 502, "detail": error.reason}, b""
        channel.answer(client, header["id"], answer, result)


class Host:
    def __init__(self, *, gpu: bool = False):
        self.gpu = gpu
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.slots: dict[int, Slot] = {}
        self.lock = threading.Lock()
        self.row = None
        # (skill, version) → when this host may try again to start a replica that failed
        self.paused: dict[tuple[int, int], float] = {}
        self.swept_at = time.monotonic()

    def pause(self, skill_id: int, version_id: int) -> None:
        self.paused[skill_id, version_id] = time.monotonic() + RESTART_PAUSE_SECONDS

    def forget(self, slot: Slot) -> None:
        with self.lock:
            if self.slots.get(slot.row_id) is slot:
                del self.slots[slot.row_id]
        SkillReplica.objects.filter(pk=slot.row_id).delete()
        close_old_connections()

    def run(self, stop: threading.Event) -> None:
        remove_leftovers()
        self.row = SkillHost.objects.create(name=self.name, gpu=self.gpu, seen_at=timezone.now())
        logger.info("skill host %s started", self.name)
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # the database or Redis away for a moment: try again
                    logger.exception("skill host tick failed")
                    close_old_connections()
                stop.wait(TICK_SECONDS)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        with self.lock:
            slots = list(self.slots.values())
        for slot in slots:
            slot.stopping.set()
        for slot in slots:
            slot.join(STOP_GRACE_SECONDS + 5)
        SkillHost.objects.filter(name=self.name).delete()
        logger.info("skill host %s stopped", self.name)

    def tick(self) -> None:
        now = timezone.now()
        if not SkillHost.objects.filter(name=self.name).update(seen_at=now):
            # declared lost by another host (it freed our slots): start over, as a new host
            self.shutdown()
            self.row = SkillHost.objects.create(name=self.name, gpu=self.gpu, seen_at=now)
        lost = now - timedelta(seconds=settings.SKILL_HOST_LOST_AFTER_SECONDS)
        SkillHost.objects.filter(seen_at__lt=lost).delete()  # their replica rows go with them
        skills = {
            skill.pk: skill
            for skill in Skill.objects.filter(status__in=Skill.DEPLOYED, gpu=self.gpu)
        }
        for skill in skills.values():
            if skill.auto_update:
                transitions.follow_newest(skill)
            elif skill.alias:
                transitions.follow_alias(skill)
        self._stop_unwanted(skills)
        self._claim(skills)
        self._switch(skills)
        record_calls()
        if time.monotonic() - self.swept_at >= settings.SKILL_LEFTOVERS_SWEEP_SECONDS:
            # another host of this machine killed while this one runs: its replicas' rows are
            # freed above, their workspaces and uids are left to whoever is still here
            self.swept_at = time.monotonic()
            remove_leftovers()

    def _stop_unwanted(self, skills) -> None:
        with self.lock:
            slots = list(self.slots.values())
        numbers = dict(  # this host's rows, in one query: a slot whose row went is stopped
            SkillReplica.objects.filter(host__name=self.name).values_list("pk", "slot")
        )
        for slot in slots:
            skill = skills.get(slot.skill_id)
            wanted = skill is not None and slot.version_id in (skill.version_id, skill.serving_id)
            number = numbers.get(slot.row_id)
            if not wanted or number is None or number >= skill.replicas:
                slot.pulling = False
                slot.stopping.set()
            else:
                slot.pulling = slot.version_id == skill.serving_id

    def _claim(self, skills) -> None:
        hosts = SkillHost.objects.filter(gpu=self.gpu).count() or 1
        rows = collections.defaultdict(set)
        mine = collections.Counter()
        for skill_id, version_id, slot, host_id in SkillReplica.objects.filter(
            skill__in=list(skills)
        ).values_list("skill", "version", "slot", "host"):
            rows[skill_id, version_id].add(slot)
            if host_id == self.row.pk:
                mine[skill_id] += 1
        for skill in skills.values():
            share = math.ceil(skill.replicas / hosts)  # spread a skill's replicas over hosts
            for version_id in {skill.version_id, skill.serving_id} - {None}:
                if self.paused.get((skill.pk, version_id), 0) > time.monotonic():
                    continue
                free = [n for n in range(skill.replicas) if n not in rows[skill.pk, version_id]]
                if free and mine[skill.pk] < share * (1 + (skill.serving_id != skill.version_id)):
                    if self._start(skill, version_id, free[0]):
                        mine[skill.pk] += 1

    def _start(self, skill, version_id, number) -> bool:
        try:
            with transaction.atomic():
                row = SkillReplica.objects.create(
                    skill=skill, version_id=version_id, slot=number, host=self.row
                )
        except IntegrityError:  # another host claimed it first
            return False
        row = SkillReplica.objects.select_related("version__package", "version__manifest").get(
            pk=row.pk
        )
        slot = Slot(self, row, skill)
        with self.lock:
            self.slots[row.pk] = slot
        slot.start()
        return True

    def _switch(self, skills) -> None:
        """Move traffic to a skill's new version once all its replicas have loaded."""
        for skill in skills.values():
            ready = SkillReplica.objects.filter(
                skill=skill, version_id=skill.version_id, state=SkillReplica.READY
            ).count()
            serving = skill.serving_id == skill.version_id and skill.status == Skill.AVAILABLE
            if not serving and ready >= skill.replicas:
                transitions.serve_new_version(skill)


def remove_leftovers() -> None:
    remove_orphan_workspaces()
    sandbox_uids.release_left()  # the uids of a killed host's replicas, whose are now gone


def remove_orphan_workspaces() -> None:
    """The workspaces of replicas that no longer exist (a host on this machine was killed and
    its replica rows freed): `skill-<replica>-<random>`, removed. A live host's are kept."""
    folders = list(settings.WORKSPACES_DIR.glob("skill-*-*"))
    numbers = {folder: folder.name.split("-")[1] for folder in folders}
    alive = set(
        SkillReplica.objects.filter(
            pk__in=[int(n) for n in numbers.values() if n.isdigit()]
        ).values_list("pk", flat=True)
    )
    for folder, number in numbers.items():
        if not (number.isdigit() and int(number) in alive):
            Workspace(folder).remove()
            logger.info("removed the workspace of a replica that is gone: %s", folder.name)
