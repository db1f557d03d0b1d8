"""ML Skills: a package version deployed as a live endpoint. The skill row is what is wanted
(version, replicas, deployed or not); replica rows are what skill hosts run, claimed slot by
slot so two hosts never start the same replica; calls are counted per minute."""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models

from core.models import Project

API_KEY_PREFIX_CHARS = 8  # "sk-" and 5 more: enough to tell keys apart in a list


def new_api_key() -> str:
    return "sk-" + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> str:
    """A key's SHA-256: a key is 256 random bits, so a fast hash is as safe as a slow one, and
    checking a call's key costs a microsecond."""
    return hashlib.sha256(key.encode()).hexdigest()


class Skill(models.Model):
    DEPLOYING, AVAILABLE, UPDATING = "deploying", "available", "updating"
    FAILED, UNDEPLOYED = "failed", "undeployed"
    STATUSES = [
        (DEPLOYING, "Deploying"),
        (AVAILABLE, "Available"),
        (UPDATING, "Updating"),
        (FAILED, "Failed"),
        (UNDEPLOYED, "Undeployed"),
    ]
    DEPLOYED = (DEPLOYING, AVAILABLE, UPDATING)  # skill hosts keep replicas of these up

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="skills")
    name = models.CharField(max_length=100)
    package = models.ForeignKey("packages.Package", on_delete=models.PROTECT, related_name="skills")
    # What it should serve; `serving` is what takes calls now (they differ while updating).
    version = models.ForeignKey(
        "packages.PackageVersion", on_delete=models.PROTECT, related_name="skills"
    )
    serving = models.ForeignKey(
        "packages.PackageVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="served_by",
    )
    # The version that last failed to load: auto-update does not pick it again.
    failed_version = models.ForeignKey(
        "packages.PackageVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    auto_update = models.BooleanField(default=False)
    # The package's alias it follows (packages.PackageAlias, by name): when the alias moves,
    # the skill updates to its version. By name, so removing the alias and setting it again
    # is followed too; while there is none the skill keeps what it has.
    alias = models.CharField(max_length=40, blank=True)
    replicas = models.PositiveSmallIntegerField(default=1)
    gpu = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=STATUSES, default=DEPLOYING)
    reason = models.TextField(blank=True)
    # Its API key is shown once (the create and rotate-key answers, the page right after):
    # only its SHA-256 and first characters are kept, so a copy of the database opens no skill.
    api_key_digest = models.CharField(max_length=64, unique=True)
    api_key_prefix = models.CharField(max_length=API_KEY_PREFIX_CHARS)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="skill_name_per_project")
        ]
        ordering = ["name"]

    # The key itself, on the instance that was just given one (give_api_key), to show once.
    api_key = None

    def __str__(self):
        return self.name

    @property
    def deployed(self) -> bool:
        return self.status in self.DEPLOYED

    def give_api_key(self) -> str:
        """A new API key (saved with the skill by the caller): its digest and prefix are
        stored, the key itself is only returned and kept in `api_key` to be shown once."""
        self.api_key = new_api_key()
        self.api_key_digest = api_key_digest(self.api_key)
        self.api_key_prefix = self.api_key[:API_KEY_PREFIX_CHARS]
        return self.api_key

    def opens_with(self, key: str) -> bool:
        """Is `key` this skill's API key? Compared in constant time, digest to digest."""
        return hmac.compare_digest(self.api_key_digest, api_key_digest(key))


class SkillHost(models.Model):
    """A running `manage.py skillhost`; `seen_at` is its heartbeat."""

    name = models.CharField(max_length=200, unique=True)
    gpu = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True)
    seen_at = models.DateTimeField()

    def __str__(self):
        return self.name


class SkillReplica(models.Model):
    """Slot `slot` of a skill's version, claimed by a host. The unique constraint is the claim."""

    STARTING, READY, FAILED, STOPPING = "starting", "ready", "failed", "stopping"
    STATES = [(STARTING, "Starting"), (READY, "Ready"), (FAILED, "Failed"), (STOPPING, "Stopping")]

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="replica_rows")
    version = models.ForeignKey(
        "packages.PackageVersion", on_delete=models.CASCADE, related_name="+"
    )
    slot = models.PositiveSmallIntegerField()
    host = models.ForeignKey(SkillHost, on_delete=models.CASCADE, related_name="replicas")
    state = models.CharField(max_length=10, choices=STATES, default=STARTING)
    error = models.TextField(blank=True)
    restarts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["skill", "version", "slot"], name="one_replica_per_slot"
            )
        ]

    def __str__(self):
        return f"replica {self.slot} of {self.skill_id} ({self.state})"


class SkillCall(models.Model):
    """One of a skill's recent calls (the newest are kept; older ones only as counts)."""

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="calls")
    time = models.DateTimeField()
    milliseconds = models.FloatField()
    status = models.PositiveSmallIntegerField()
    input = models.TextField(blank=True)  # only when the project keeps skill inputs

    class Meta:
        indexes = [models.Index(fields=["skill", "-time"], name="skill_calls_newest")]
        ordering = ["-time"]

    def __str__(self):
        return f"{self.status} in {self.milliseconds:.1f} ms"


class SkillMinute(models.Model):
    """A skill's calls in one minute: how many, how many failed, and their latencies as a
    histogram (counts per LATENCY_BUCKETS_MS bucket), enough for a p50 of any span."""

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="minutes")
    minute = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    latencies = models.JSONField(default=list)
    # Its ML Logs "predictions" event is written (once the minute is over: skills/stats.py).
    logged = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["skill", "minute"], name="one_row_per_minute")
        ]
        # the minutes still to log: a few rows, however many minutes are kept
        indexes = [
            models.Index(
                fields=["minute"], condition=models.Q(logged=False), name="skill_minute_unlogged"
            )
        ]

    def __str__(self):
        return f"{self.calls} calls at {self.minute:%H:%M}"
