"""The runs and files bench/pages_bench.py measures its pages on: a year of runs made in bulk,
and an artifacts tree of many files. Imported after django.setup()."""

import io
import random
from datetime import UTC, datetime, timedelta

from core.blobs import blob_store
from core.models import Manifest, ManifestEntry
from datasets.services import dataset_create
from pipelines.models import MetricSeries, PipelineRun, Schedule

# status: share of the runs (the rest successful)
STATUSES = [("failed", 0.12), ("killed", 0.03), ("queued", 0.01), ("running", 0.003)]
TYPES = [("train", 0.7), ("evaluate", 0.2), ("full", 0.1)]


def pick(rng, shares, default):
    draw = rng.random()
    for value, share in shares:
        if draw < share:
            return value
        draw -= share
    return default


def make_runs(project, user, total, seed=13):
    """`total` runs over the last year, newest last, made in bulk with their own creation
    times (auto_now_add would stamp them all now): bursts of runs share a second, as 300 runs
    submitted at once do."""
    rng = random.Random(seed)
    packages = list(project.packages.order_by("name"))
    versions = {p.pk: p.versions.get(major=1, minor=0) for p in packages}
    weights = [1 / (rank + 1) for rank in range(len(packages))]  # a few packages run most
    dataset = project.datasets.get()
    schedule = Schedule.objects.create(
        project=project,
        name="nightly",
        created_by=user,
        inputs={"type": "train", "package": packages[0].name, "version": "1.0"},
        every=1,
        unit=Schedule.DAYS,
        starts_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    field = PipelineRun._meta.get_field("created_at")
    field.auto_now_add = False
    began = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / total
    moment, burst = began, 0
    try:
        for start in range(0, total, 10_000):
            runs = []
            for index in range(start, min(total, start + 10_000)):
                if burst:
                    burst -= 1  # same second as the run before
                else:
                    moment = began + step * index
                    burst = rng.choice([0] * 20 + [5, 50, 300]) if rng.random() < 0.01 else 0
                status = pick(rng, STATUSES, "successful")
                kind = pick(rng, TYPES, "train")
                package = rng.choices(packages, weights)[0]
                finished = status in PipelineRun.FINISHED
                runs.append(
                    PipelineRun(
                        project=project,
                        name=f"run {index}",
                        type=kind,
                        status=status,
                        package=package,
                        version=versions[package.pk],
                        dataset=dataset,
                        evaluation_dataset=dataset if kind != "train" else None,
                        parameters={"epochs": str(rng.randint(1, 50))},
                        created_by=user,
                        created_at=moment.replace(microsecond=0),
                        started_at=moment if status not in ("queued",) else None,
                        finished_at=moment + timedelta(seconds=rng.randint(5, 900))
                        if finished
                        else None,
                        queue="pipelines",
                        score=round(rng.random(), 4)
                        if status == "successful" and kind != "train"
                        else None,
                        schedule=schedule if rng.random() < 0.05 else None,
                        results_text="{}" if finished else "",
                    )
                )
            runs = PipelineRun.objects.bulk_create(runs, batch_size=2000)
            MetricSeries.objects.bulk_create(
                [
                    MetricSeries.of(run, "loss", count=10, last=rng.random(), min=0, max=1)
                    for run in runs
                    if rng.random() < 0.3
                ],
                batch_size=2000,
            )
    finally:
        field.auto_now_add = True
    return schedule


def make_tree(files):
    """(path, size) of an artifacts tree of `files` files."""
    paths = [f"{name}" for name in ("metrics.csv", "report.json", "model_card.md", "config.yaml")]
    paths += [f"logs/2025/11/27/worker-{i:02}.log" for i in range(16)]
    paths += [f"plots/epoch_{e:03}/{k}.png" for e in range(1, 101) for k in range(15)]
    paths += [f"checkpoints/step_{s:06}.pt" for s in range(0, 480 * 250, 250)]
    paths += [f"images/class_{c:02}/img_{i:05}.png" for c in range(10) for i in range(400)]
    # one flat folder holds the rest: a prediction per input
    paths += [f"predictions/{i:05}.json" for i in range(max(0, files - len(paths)))]
    rng = random.Random(7)
    return [(path, rng.randint(200, 2_000_000)) for path in paths[:files]]


def make_outputs(project, user, files):
    """The newest run gets an artifacts manifest of `files` entries; a dataset gets the same
    tree. One stored blob: the pages only read the entries."""
    blob = blob_store(io.BytesIO(b"x"))
    tree = make_tree(files)

    def manifest_of(tree):
        manifest = Manifest.objects.create()
        ManifestEntry.objects.bulk_create(
            [ManifestEntry(manifest=manifest, path=p, blob=blob, size=n) for p, n in tree],
            batch_size=2000,
        )
        return manifest

    run = PipelineRun.objects.filter(project=project).order_by("-created_at", "-id").first()
    run.artifacts = manifest_of(tree)
    run.save(update_fields=["artifacts"])
    dataset = dataset_create(project=project, user=user, name="images")
    old = dataset.manifest
    dataset.manifest = manifest_of(tree)
    dataset.save(update_fields=["manifest"])
    old.delete()
    return run, dataset
