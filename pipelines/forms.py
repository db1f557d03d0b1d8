"""The create-pipeline form's values: read from a request, pre-filled from a run or a version."""

from pipelines.models import PipelineRun
from pipelines.parameters import DEFAULTS

FIELDS = (
    "type",
    "name",
    "package",
    "major",
    "minor",
    "dataset",
    "dataset_folder",
    "evaluation_dataset",
    "evaluation_folder",
)


def form_values(data) -> dict:
    """The form as the user left it (GET while editing in place, or POST)."""
    values = {name: (data.get(name) or "").strip() for name in FIELDS}
    values["type"] = values["type"] or PipelineRun.TRAIN
    values["gpu"] = data.get("gpu") in ("on", "true", "1")
    names, texts = data.getlist("param_name"), data.getlist("param_value")
    rows = [[n.strip(), v] for n, v in zip(names, texts, strict=False)]
    if "param_name" not in data and "param_value" not in data:
        rows = [[name, DEFAULTS[name]] for name in ("artifacts_directory", "save_training_data")]
    remove = data.get("remove_param")
    if remove is not None and remove.isdigit() and int(remove) < len(rows):
        rows.pop(int(remove))
    if data.get("add_param"):
        rows.append(["", ""])
    values["params"] = rows
    return values


def values_from_run(run) -> dict:
    """Run again: the run's inputs, ready to change."""
    defaults = {k: v for k, v in DEFAULTS.items()}
    return {
        "type": run.type,
        "name": "",
        "package": run.package.name,
        "major": str(run.version.major),
        "minor": str(run.version.minor),
        "dataset": run.dataset.name if run.dataset else "",
        "dataset_folder": run.dataset_folder,
        "evaluation_dataset": run.evaluation_dataset.name if run.evaluation_dataset else "",
        "evaluation_folder": run.evaluation_folder,
        "gpu": run.gpu,
        "params": [
            [k, v]
            for k, v in run.parameters.items()
            if k not in defaults
            or v != defaults[k]
            or k in ("artifacts_directory", "save_training_data")
        ],
    }


def parameters_from(values) -> tuple[dict, list[str]]:
    """Rows → {name: value}; problems with the rows themselves (no name, twice the same)."""
    parameters, problems = {}, []
    for number, (name, value) in enumerate(values["params"], start=1):
        if not name and not str(value).strip():
            continue
        if not name:
            problems.append(f"Row {number} has a value but no name.")
        elif name in parameters:
            problems.append(f"'{name}' is given twice.")
        else:
            parameters[name] = value
    return parameters, problems
