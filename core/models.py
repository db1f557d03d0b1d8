from django.conf import settings
from django.db import models
from django.utils import timezone


class Project(models.Model):
    """AI Center's unit of isolation: its datasets, packages and pipelines."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Package code has no network by default; a Project admin may open outbound network for
    # this project's runs (then Redis and PostgreSQL must require passwords: see the README).
    allow_network = models.BooleanField(
        default=False, help_text="Runs of this project may open outbound network connections."
    )
    # ML Skills' recent calls show their inputs only if a Project admin turns this on.
    keep_skill_inputs = models.BooleanField(
        default=False, help_text="Keep the inputs of ML Skill calls among their recent calls."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    ADMIN = "admin"
    DATA_SCIENTIST = "data_scientist"
    VIEWER = "viewer"
    ROLES = [(ADMIN, "Project admin"), (DATA_SCIENTIST, "Data scientist"), (VIEWER, "Viewer")]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=ROLES, default=DATA_SCIENTIST)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")
        ]

    def __str__(self):
        return f"{self.user} in {self.project} ({self.get_role_display()})"


class ApiToken(models.Model):
    """A bearer token for the JSON API, named by its user. Only its SHA-256 is kept: the token
    itself is shown once, when it is made. A revoked or expired token lets nobody in; its row
    stays, so the list (and ML Logs) still say what it was."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'CI robot'")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell tokens apart")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A revoked token's name may be used again: revoking and re-making "CI" is common.
            models.UniqueConstraint(
                fields=["user", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_unrevoked_token_name_per_user",
            )
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…, {self.user})"

    @property
    def status(self) -> str:
        """'active', 'expired' or 'revoked', as the tokens page and API show it."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


def blob_storage_name(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"


class Blob(models.Model):
    """File content stored once, named by its SHA-256, whoever uploads it and how often."""

    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.sha256

    @property
    def storage_name(self):
        return blob_storage_name(self.sha256)


class Manifest(models.Model):
    """A folder tree as a list of path → blob: a dataset, a package version, artifacts, a
    snapshot. Copying one copies rows, never bytes."""

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"manifest {self.pk}"


class ManifestEntry(models.Model):
    """A file (with a blob) or an explicitly created empty folder (path ending in '/', no blob)."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="entries")
    path = models.CharField(max_length=1024)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True)
    size = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["manifest", "path"], name="one_entry_per_path")
        ]
        ordering = ["path"]
        verbose_name_plural = "manifest entries"

    def __str__(self):
        return self.path

    @property
    def name(self):
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def is_folder(self):
        return self.blob_id is None


class Event(models.Model):
    """One line of a project's ML Logs: who did what, when, to which object. Append-only:
    events are created (core.events.record) and, past the retention, deleted by the
    sweeper; never changed."""

    SYSTEM = "system"  # the actor of what nobody did by hand (workers, schedules, the sweeper)

    time = models.DateTimeField(default=timezone.now)
    # None for events that belong to no project (a user's API tokens).
    project = models.ForeignKey(  # indexed by the indexes below, which all begin with it
        Project,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        db_index=False,
    )
    category = models.CharField(max_length=20)  # package, dataset, pipeline, schedule, skill, …
    action = models.CharField(max_length=30)  # uploaded, validated, refused, started, …
    # The user who did it (a page, or an API call with their token); None for "system". The
    # name stays when the user is deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, default=SYSTEM)
    # What it was done to: its kind ("pipeline", "version", …), its key within the project
    # (a pk or a name) and how people call it ("Pipeline 42", "my-package 1.2").
    object_type = models.CharField(max_length=20)
    object_key = models.CharField(max_length=200, blank=True)
    object_name = models.CharField(max_length=300, blank=True)
    # The object's page when the event was written; shown as a link while the object exists.
    url = models.CharField(max_length=500, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        # Born in the ML Logs app (governance); its table keeps that name.
        db_table = "governance_event"
        ordering = ["-id"]
        # Newest first (keyset on id) within a project, and by each filter of the ML Logs page.
        indexes = [
            models.Index(fields=["project", "-id"], name="event_project_newest"),
            models.Index(fields=["project", "category", "-id"], name="event_category_newest"),
            models.Index(fields=["project", "actor_name", "-id"], name="event_actor_newest"),
            models.Index(
                fields=["project", "object_type", "object_key", "-id"], name="event_object_newest"
            ),
            # a key alone ("invoices": the package, the dataset, …), and the time range's
            # bounds (governance.selectors._time_ids)
            models.Index(fields=["project", "object_key", "-id"], name="event_key_newest"),
            models.Index(fields=["project", "time"], name="event_project_time"),
            models.Index(fields=["time"], name="event_time"),
        ]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.category} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("ML Logs are append-only: an event is never changed.")
        super().save(*args, **kwargs)
