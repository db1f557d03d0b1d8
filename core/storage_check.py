"""The operator's check of stored blobs: every recorded blob read back and hashed against its
name. A blob whose bytes don't match is moved aside to `quarantine/` in the same storage (kept
for inspection, never served: downloads of it answer that it is damaged, and the next upload of
its true bytes writes it again), and one that is missing is reported."""

from dataclasses import dataclass, field

from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from core.blobs import blob_digest, local_path
from core.models import Blob, blob_storage_name

QUARANTINE = "quarantine"


@dataclass
class Findings:
    checked: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.corrupt and not self.missing


def quarantine(sha256: str) -> str:
    """Move a blob's stored bytes out of its name; returns where they went."""
    name = blob_storage_name(sha256)
    target = f"{QUARANTINE}/{sha256}-{timezone.now():%Y%m%dT%H%M%S}"
    path = local_path(sha256)
    if path is not None:
        destination = path.parents[3] / target  # storage's root: blobs/ab/cd/<sha>
        destination.parent.mkdir(parents=True, exist_ok=True)
        path.replace(destination)
        return target
    with default_storage.open(name, "rb") as stored:
        default_storage.save(target, File(stored))
    default_storage.delete(name)
    return target


def storage_check(*, fix: bool = True, report=None) -> Findings:
    """Verify every recorded blob; with `fix`, quarantine those whose bytes don't match.
    `report(text)` hears each problem as it is found."""
    findings = Findings()
    for sha256, size in Blob.objects.order_by("pk").values_list("sha256", "size").iterator():
        findings.checked += 1
        findings.bytes += size
        digest = blob_digest(sha256)
        if digest is None:
            findings.missing.append(sha256)
            if report:
                report(f"missing: blob {sha256} ({size} bytes) has no stored bytes")
        elif digest != sha256:
            findings.corrupt.append(sha256)
            where = quarantine(sha256) if fix else "left in place (--dry-run)"
            if report:
                report(f"corrupt: blob {sha256} holds bytes hashing to {digest}; {where}")
    return findings
