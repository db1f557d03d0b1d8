from django.db import models


class SandboxUid(models.Model):
    """A uid of AICENTER_SANDBOX_UIDS and who had it last (sandbox/sandbox_uids.py):
    held from its lease until nothing of its holder is left on the holder's machine."""

    uid = models.PositiveBigIntegerField(primary_key=True)
    kind = models.CharField(max_length=16)  # run, ahead, build or replica
    held = models.BooleanField()
    host = models.CharField(max_length=255)  # the holder's machine: its hostname
    pid = models.PositiveIntegerField()  # the process that leased it, on that machine
    holder = models.CharField(max_length=255)  # its workspace's name; a build's own
    changed_at = models.DateTimeField()

    class Meta:
        db_table = "pipelines_sandboxuid"  # born in the pipelines app
        # the sweeper's question: what does this machine still hold?
        indexes = [models.Index(fields=["host"], condition=models.Q(held=True), name="uid_held")]

    def __str__(self):
        return f"uid {self.uid} ({self.kind}, {'held by' if self.held else 'was'} {self.holder})"


class SandboxUidCounter(models.Model):
    """Where each kind of sandbox is in its part of AICENTER_SANDBOX_UIDS: every machine's
    leases go through the part in turn from here."""

    kind = models.CharField(max_length=16, primary_key=True)
    position = models.BigIntegerField()

    class Meta:
        db_table = "pipelines_sandboxuidcounter"  # born in the pipelines app

    def __str__(self):
        return f"{self.kind} at {self.position}"
