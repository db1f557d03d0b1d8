from django.core.management.base import BaseCommand, CommandError

from core.storage_check import storage_check


class Command(BaseCommand):
    help = (
        "Verify every stored blob against its name (SHA-256). Blobs whose bytes don't match "
        "are moved to quarantine/ in the storage; missing ones are reported. Exits non-zero "
        "when anything is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="report only; quarantine nothing"
        )

    def handle(self, *args, dry_run=False, **options):
        findings = storage_check(fix=not dry_run, report=self.stderr.write)
        summary = (
            f"checked {findings.checked} blobs ({findings.bytes / 1024 / 1024:.1f} MB): "
            f"{len(findings.corrupt)} corrupt, {len(findings.missing)} missing"
        )
        if not findings.clean:
            raise CommandError(summary)
        self.stdout.write(summary)
