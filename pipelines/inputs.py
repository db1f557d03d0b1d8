"""A pipeline run's inputs: checked field by field before anything is stored (for a run, a
Retry and a recurring pipeline alike)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef

from core.manifests import blob_open, clean_folder, manifest_file, manifest_folder_exists
from core.models import ManifestEntry
from datasets.models import Dataset
from packages.aliases import version_by_reference
from packages.models import Package, PackageVersion
from packages.validation import main_methods
from pipelines.models import PipelineRun
from pipelines.parameters import clean_parameters

TYPES = dict(PipelineRun.TYPES)


def _dataset(project, name, folder, field, errors):
    if not name:
        return None, ""
    files = ManifestEntry.objects.filter(manifest=OuterRef("manifest"), blob__isnull=False)
    dataset = (
        Dataset.objects.filter(project=project, name=name)
        .select_related("manifest")
        .annotate(has_files=Exists(files))  # in the same query
        .first()
    )
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
    elif not dataset.has_files:
        errors[field] = f"Dataset {name} is empty: upload data first."
    return dataset, folder


def _package_version(project, name, number):
    """(package, version) by name and number (or alias: the version it points at now), each
    None when there is none: one query when both exist."""
    try:
        major, minor = (int(part) for part in str(number).split("."))
    except ValueError:
        major = minor = None
    if name and major is not None:
        version = (
            PackageVersion.objects.filter(
                package__project=project, package__name=name, major=major, minor=minor
            )
            .select_related("package")
            .first()
        )
        if version is not None:
            return version.package, version
    package = Package.objects.filter(project=project, name=name).first()
    if package is not None and major is None:
        return package, version_by_reference(package=package, reference=number)
    return package, None


def _methods(version) -> set[str]:
    """class Main's methods in the version's train.py, or every name when unknowable (then the
    run itself says what is missing)."""
    entry = manifest_file(version.manifest, "train.py")
    if entry is None:
        return set()
    with blob_open(entry.blob) as stored:
        methods = main_methods(stored.read())
    return {"process_data"} if methods is None else methods


def _package_problem(type, package, version, package_obj, version_obj) -> tuple[str, str] | None:
    """(field, message) when the package or version can't run a pipeline of `type`."""
    if not package:
        return "package", "Choose a package."
    if package_obj is None:
        return "package", f"There is no package '{package}' in this project."
    if version_obj is None:
        return "version", f"Package {package} has no version '{version}', nor an alias so named."
    if not package_obj.training_enabled:
        return "version", (
            f"Package {package} does not have training enabled, so it can't run "
            "pipelines; upload it with 'Enable training' and a train.py."
        )
    if type == PipelineRun.FULL and "process_data" not in _methods(version_obj):
        return "version", (
            f"train.py of {package} {version_obj.number} has no method process_data, "
            "which a full pipeline run calls first (it writes the training and test splits "
            "into training_data_directory and test_data_directory); run a training run, "
            "or add process_data(data_directory)."
        )
    return None


def _datasets_for_type(type, dataset, evaluation_dataset) -> dict[str, str]:
    """The datasets a run of `type` must and must not be given."""
    errors = {}
    if type in (PipelineRun.TRAIN, PipelineRun.FULL) and not dataset:
        errors["dataset"] = "Choose the input dataset."
    if type == PipelineRun.EVALUATE and not evaluation_dataset:
        errors["evaluation_dataset"] = "Choose the evaluation dataset."
    if type == PipelineRun.TRAIN and evaluation_dataset:
        errors["evaluation_dataset"] = "A training run takes no evaluation dataset."
    if type == PipelineRun.EVALUATE and dataset:
        errors["dataset"] = "An evaluation run takes only an evaluation dataset."
    return errors


def _time_limit(max_run_seconds, errors) -> int | None:
    """The run's time limit in seconds: the longest allowed when none is given."""
    limit = settings.PIPELINE_MAX_RUN_SECONDS
    if max_run_seconds is None or max_run_seconds == "":
        return limit
    try:
        seconds = int(max_run_seconds)
        if not 1 <= seconds <= limit:
            raise ValueError
        return seconds
    except (TypeError, ValueError):
        errors["max_run_seconds"] = (
            f"The time limit must be a whole number of seconds from 1 to {limit:,}."
        )
        return max_run_seconds


def clean_run_inputs(
    *,
    project,
    type: str,
    package: str,
    version: str,
    dataset: str = "",
    dataset_folder: str = "",
    evaluation_dataset: str = "",
    evaluation_folder: str = "",
    parameters: dict | None = None,
    gpu: bool = False,
    max_run_seconds: int | None = None,
) -> dict:
    """Check a run's inputs; return PipelineRun field values, or raise a ValidationError naming
    every problem field by field."""
    errors = {}
    names = {
        "package": package,
        "version": version,
        "dataset": dataset,
        "dataset_folder": dataset_folder,
        "evaluation_dataset": evaluation_dataset,
        "evaluation_folder": evaluation_folder,
    }
    if nul := [field for field, value in names.items() if "\x00" in str(value)]:
        # no name has one, and PostgreSQL can't even look one up
        raise ValidationError({field: "This contains a NUL character." for field in nul})
    if type not in TYPES:
        errors["type"] = f"'{type}' is not a pipeline type; use train, evaluate or full."
    package_obj, version_obj = _package_version(project, package, version)
    if problem := _package_problem(type, package, version, package_obj, version_obj):
        errors.update([problem])
    dataset_obj, dataset_folder = _dataset(project, dataset, dataset_folder, "dataset", errors)
    evaluation_obj, evaluation_folder = _dataset(
        project, evaluation_dataset, evaluation_folder, "evaluation_dataset", errors
    )
    errors.update(_datasets_for_type(type, dataset, evaluation_dataset))
    max_run_seconds = _time_limit(max_run_seconds, errors)
    try:
        parameters = clean_parameters(parameters)
    except ValidationError as error:
        errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    return {
        "type": type,
        "package": package_obj,
        "version": version_obj,
        "dataset": dataset_obj,
        "dataset_folder": dataset_folder,
        "evaluation_dataset": evaluation_obj,
        "evaluation_folder": evaluation_folder,
        "parameters": parameters,
        "gpu": bool(gpu),
        "queue": "gpu" if gpu else "pipelines",
        "max_run_seconds": max_run_seconds,
    }


def run_inputs(run) -> dict:
    """A run's inputs as clean_run_inputs takes them: for Retry and for schedules."""
    return {
        "type": run.type,
        "package": run.package.name,
        "version": run.version.number,
        "dataset": run.dataset.name if run.dataset else "",
        "dataset_folder": run.dataset_folder,
        "evaluation_dataset": run.evaluation_dataset.name if run.evaluation_dataset else "",
        "evaluation_folder": run.evaluation_folder,
        "parameters": dict(run.parameters),
        "gpu": run.gpu,
        "max_run_seconds": run.max_run_seconds,
    }


def deleted_inputs(run) -> list[str]:
    """What the run read that was deleted since ("package classifier", "dataset invoices"):
    it can't be retried. Its page still names them, marked deleted."""
    gone = []
    if run.package.deleted_at or run.version.deleted_at:
        gone.append(f"package {run.package.name} {run.version.number}")
    for dataset in (run.dataset, run.evaluation_dataset):
        if dataset is not None and dataset.deleted_at:
            gone.append(f"dataset {dataset.name}")
    return gone
