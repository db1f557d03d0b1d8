"""The create-pipeline form's values: read from a request, pre-filled from a run, a schedule or
a version, and turned into the services' arguments."""

from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError

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
    # when to run, and for how long at most
    "when",
    "at",
    "timezone",
    "every",
    "unit",
    "cron",
    "starts_at",
    "time_limit",
)
# SPEC's variables the form shows as rows for each type: the folder the artifacts come from,
# and the snapshots that type can keep (training data, and the evaluation data or test split).
SHOWN_DEFAULTS = {
    PipelineRun.TRAIN: ("artifacts_directory", "save_training_data"),
    PipelineRun.EVALUATE: ("artifacts_directory", "save_test_data"),
    PipelineRun.FULL: ("artifacts_directory", "save_training_data", "save_test_data"),
}


def _shown(type_: str) -> tuple[str, ...]:
    return SHOWN_DEFAULTS.get(type_, SHOWN_DEFAULTS[PipelineRun.TRAIN])


def form_values(data) -> dict:
    """The form as the user left it (GET while editing in place, or POST)."""
    values = {name: (data.get(name) or "").strip() for name in FIELDS}
    values["type"] = values["type"] or PipelineRun.TRAIN
    values["when"] = values["when"] or "now"
    values["timezone"] = values["timezone"] or "UTC"
    values["unit"] = values["unit"] or "days"
    values["every"] = values["every"] or "1"
    values["gpu"] = data.get("gpu") in ("on", "true", "1")
    names, texts = data.getlist("param_name"), data.getlist("param_value")
    rows = [[n.strip(), v] for n, v in zip(names, texts, strict=False)]
    if "param_name" not in data and "param_value" not in data:
        rows = [[name, DEFAULTS[name]] for name in _shown(values["type"])]
    elif data.get("params_for", values["type"]) != values["type"]:
        rows = _rows_for_type(rows, data["params_for"], values["type"])
    remove = data.get("remove_param")
    if remove is not None and remove.isdigit() and int(remove) < len(rows):
        rows.pop(int(remove))
    if data.get("add_param"):
        rows.append(["", ""])
    values["params"] = rows
    return values


def _rows_for_type(rows, old_type: str, new_type: str) -> list[list[str]]:
    """The type changed in place: the old type's shown defaults go if left untouched, the new
    type's come (with SPEC's values) unless there; the user's own rows stay as they are."""
    new = _shown(new_type)
    kept = [
        [name, value]
        for name, value in rows
        if name in new or name not in _shown(old_type) or value != DEFAULTS.get(name)
    ]
    present = {name for name, _ in kept}
    return kept + [[name, DEFAULTS[name]] for name in new if name not in present]


def _param_rows(parameters: dict, type_: str) -> list[list[str]]:
    """Parameters worth showing: the user's own, those changed from SPEC's defaults, and the
    defaults the form always shows for the type."""
    return [
        [name, value]
        for name, value in parameters.items()
        if name not in DEFAULTS or value != DEFAULTS[name] or name in _shown(type_)
    ]


def _base_values(**values) -> dict:
    empty = {name: "" for name in FIELDS}
    return {**empty, "when": "now", "timezone": "UTC", "unit": "days", "every": "1", **values}


def values_from_run(run) -> dict:
    """Run again: the run's inputs and name, ready to change."""
    from pipelines.parameters import ordered_parameters
    from pipelines.services import own_run_name

    return _base_values(
        type=run.type,
        name=own_run_name(run),
        package=run.package.name,
        major=str(run.version.major),
        minor=str(run.version.minor),
        dataset=run.dataset.name if run.dataset else "",
        dataset_folder=run.dataset_folder,
        evaluation_dataset=run.evaluation_dataset.name if run.evaluation_dataset else "",
        evaluation_folder=run.evaluation_folder,
        gpu=run.gpu,
        params=_param_rows(ordered_parameters(run.parameters), run.type),
        time_limit=_minutes(run.max_run_seconds),
    )


def values_from_schedule(schedule) -> dict:
    """Edit a recurring pipeline: its inputs and its rule."""
    from pipelines.parameters import clean_parameters, ordered_parameters

    inputs = schedule.inputs
    major, _, minor = str(inputs.get("version", "")).partition(".")
    zone = schedule.starts_at.astimezone(ZoneInfo(schedule.timezone))
    return _base_values(
        type=inputs.get("type", "train"),
        name=schedule.name,
        package=inputs.get("package", ""),
        major=major,
        minor=minor,
        dataset=inputs.get("dataset", ""),
        dataset_folder=inputs.get("dataset_folder", ""),
        evaluation_dataset=inputs.get("evaluation_dataset", ""),
        evaluation_folder=inputs.get("evaluation_folder", ""),
        gpu=inputs.get("gpu", False),
        params=_param_rows(
            ordered_parameters(clean_parameters(inputs.get("parameters"))),
            inputs.get("type", "train"),
        ),
        time_limit=_minutes(inputs.get("max_run_seconds")),
        when="recurring",
        timezone=schedule.timezone,
        every=str(schedule.every or 1),
        unit=schedule.unit or "days",
        cron=schedule.cron,
        starts_at=zone.strftime("%Y-%m-%dT%H:%M"),
    )


def _minutes(seconds) -> str:
    from django.conf import settings

    if not seconds or int(seconds) >= settings.PIPELINE_MAX_RUN_SECONDS:
        return ""
    return f"{int(seconds) / 60:g}"


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


def _time_limit(text: str) -> int | None:
    """Minutes → seconds (None: no limit given); ValueError saying what is wrong."""
    if not text:
        return None
    try:
        minutes = float(text)
    except ValueError:
        raise ValueError("The time limit is a number of minutes, like 90.") from None
    if not minutes > 0:  # also NaN
        raise ValueError("The time limit must be positive: a number of minutes, like 90.")
    if minutes == float("inf"):
        raise ValueError("The time limit is a number of minutes, like 90.")
    return max(1, round(minutes * 60))


def inputs_from(values) -> tuple[dict, dict]:
    """The form's values as clean_run_inputs takes them, and the problems with what only the
    form has (the rows, the time limit in minutes): the inputs come either way, so the services
    check the rest and the user sees every problem at once."""
    parameters, problems = parameters_from(values)
    errors = {"parameters": problems} if problems else {}
    try:
        max_run_seconds = _time_limit(values["time_limit"])
    except ValueError as error:
        max_run_seconds = None
        errors["max_run_seconds"] = [str(error)]
    evaluate = values["type"] == PipelineRun.EVALUATE
    return {
        "type": values["type"],
        "package": values["package"],
        "version": f"{values['major']}.{values['minor']}",
        "dataset": "" if evaluate else values["dataset"],
        "dataset_folder": "" if evaluate else values["dataset_folder"],
        "evaluation_dataset": ""
        if values["type"] == PipelineRun.TRAIN
        else values["evaluation_dataset"],
        "evaluation_folder": ""
        if values["type"] == PipelineRun.TRAIN
        else values["evaluation_folder"],
        "parameters": parameters,
        "gpu": values["gpu"],
        "max_run_seconds": max_run_seconds,
    }, errors


def when_from(values) -> dict | None:
    """'When to run' as clean_when takes it."""
    if values["when"] == "at":
        if not values["at"]:
            raise ValidationError({"schedule": "Choose the date and time to run at."})
        return {"at": values["at"], "timezone": values["timezone"]}
    if values["when"] == "recurring":
        rule = (
            {"cron": values["cron"]}
            if values["cron"]
            else {"every": values["every"], "unit": values["unit"]}
        )
        return {**rule, "timezone": values["timezone"], "starts_at": values["starts_at"] or None}
    return None


LAST_LOG_CHUNK = 2**31 - 1  # LogChunk.seq's largest value on every database


def log_after(data) -> int:
    """The `after` of a log poll: the number of the last log chunk the page has (0: none)."""
    raw = (data.get("after") or "0").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= LAST_LOG_CHUNK):
        raise ValidationError(
            {"after": f"after must be the number of a log chunk (0 or more), not '{raw[:40]}'."}
        )
    return int(raw)
