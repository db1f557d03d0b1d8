"""Writes for pipeline runs. Views and the API both call these."""

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from aicenter.manifests import clean_folder, manifest_folder_exists
from datasets.models import Dataset
from packages.models import Package
from pipelines.models import PipelineRun
from pipelines.parameters import clean_parameters

TYPES = dict(PipelineRun.TYPES)


def _dataset(project, name, folder, field, errors):
    if not name:
        return None, ""
    dataset = Dataset.objects.filter(project=project, name=name).select_related("manifest").first()
    if dataset is None:
        errors[field] = f"There is no dataset '{name}' in this project."
        return None, ""
    try:
        folder = clean_folder(folder)
    except ValidationError:
        errors[f"{field}_folder"] = f"'{folder}' is not a valid folder."
        return dataset, ""
    if folder and not manifest_folder_exists(dataset.manifest, folder):
        errors[f"{field}_folder"] = f"Dataset {name} has no folder '{folder}'."
    elif not dataset.manifest.entries.filter(blob__isnull=False).exists():
        errors[field] = f"Dataset {name} is empty: upload data first."
    return dataset, folder


def pipeline_run_create(
    *,
    project,
    user,
    type: str,
    package: str,
    version: str,
    dataset: str = "",
    dataset_folder: str = "",
    evaluation_dataset: str = "",
    evaluation_folder: str = "",
    parameters: dict | None = None,
    gpu: bool = False,
    name: str = "",
) -> PipelineRun:
    """Check every input, then store the run and enqueue it once the transaction commits.
    All problems are reported together, field by field; nothing is stored on error."""
    errors = {}
    if type not in TYPES:
        errors["type"] = f"'{type}' is not a pipeline type; use train, evaluate or full."
    package_obj = Package.objects.filter(project=project, name=package).first()
    version_obj = None
    if not package:
        errors["package"] = "Choose a package."
    elif package_obj is None:
        errors["package"] = f"There is no package '{package}' in this project."
    else:
        try:
            major, minor = (int(part) for part in str(version).split("."))
            version_obj = package_obj.versions.filter(major=major, minor=minor).first()
        except ValueError:
            pass
        if version_obj is None:
            errors["version"] = f"Package {package} has no version '{version}'."
        elif not package_obj.training_enabled:
            errors["version"] = (
                f"Package {package} does not have training enabled, so it can't run "
                "pipelines; upload it with 'Enable training' and a train.py."
            )
    dataset_obj, dataset_folder = _dataset(project, dataset, dataset_folder, "dataset", errors)
    evaluation_obj, evaluation_folder = _dataset(
        project, evaluation_dataset, evaluation_folder, "evaluation_dataset", errors
    )
    if type in (PipelineRun.TRAIN, PipelineRun.FULL) and not dataset:
        errors["dataset"] = "Choose the input dataset."
    if type == PipelineRun.EVALUATE and not evaluation_dataset:
        errors["evaluation_dataset"] = "Choose the evaluation dataset."
    if type == PipelineRun.TRAIN and evaluation_dataset:
        errors["evaluation_dataset"] = "A training run takes no evaluation dataset."
    if type == PipelineRun.EVALUATE and dataset:
        errors["dataset"] = "An evaluation run takes only an evaluation dataset."
    try:
        parameters = clean_parameters(parameters)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        run = PipelineRun.objects.create(
            project=project,
            name=(name or "").strip()[:200],
            type=type,
            status=PipelineRun.QUEUED,
            package=package_obj,
            version=version_obj,
            dataset=dataset_obj,
            dataset_folder=dataset_folder,
            evaluation_dataset=evaluation_obj,
            evaluation_folder=evaluation_folder,
            parameters=parameters,
            gpu=bool(gpu),
            queue="gpu" if gpu else "pipelines",
            created_by=user,
        )
        if not run.name:
            run.name = f"{package_obj.name}-{version_obj.number}-{type}-{run.pk}"
            run.save(update_fields=["name"])
        transaction.on_commit(lambda: pipeline_run_enqueue(run=run))
    return run


def pipeline_run_enqueue(*, run) -> None:
    """Hand a queued run to RQ. The row stays the truth: the job only carries its id."""
    from pipelines.tasks import execute_run

    queue = django_rq.get_queue(run.queue)
    job = queue.enqueue_call(
        execute_run,
        args=(run.pk,),
        job_id=f"pipeline-run-{run.pk}-{timezone.now().timestamp():.0f}",
        timeout=settings.RQ_QUEUES[run.queue]["DEFAULT_TIMEOUT"],
        result_ttl=3600,
        failure_ttl=7 * 24 * 3600,
        description=f"pipeline run {run.pk}",
    )
    PipelineRun.objects.filter(pk=run.pk).update(job_id=job.id, enqueued_at=timezone.now())


def pipeline_run_delete(*, run) -> None:
    """Delete a finished run with its outputs (artifacts, snapshots, logs). Versions it produced
    stay; their lineage then says the run was deleted."""
    from aicenter.manifests import manifest_delete

    if not run.is_finished:
        raise ValidationError(
            f"Pipeline run {run.pk} is {run.get_status_display().lower()}; "
            "kill it or wait for it to finish before deleting it."
        )
    manifests = [m for m in (run.artifacts, run.snapshot, run.evaluation_snapshot) if m]
    with transaction.atomic():
        run.delete()
        for manifest in manifests:
            manifest_delete(manifest)
