"""The create-pipeline form: its values read from a request (with the rows and selects it
re-renders in place), pre-filled from a run or a schedule, and PipelineForm, which cleans them
into the services' arguments."""

import re
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from pipelines.models import PipelineRun
from pipelines.parameters import DEFAULTS, clean_parameters, ordered_parameters
from pipelines.services import own_run_name
from pipelines.when import clean_when

_NUMBER = re.compile(r"^\d+\.\d+$")

FIELDS = (
    "type",
    "name",
    "package",
    "major",
    "minor",
    "alias",  # a version alias instead of the numbers (it resolves when the run starts)
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
# The contract's variables the form shows as rows for each type: the folder the artifacts come from,
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
    # A cron rule disables Every on the page, so a browser that clears the rule sends no
    # Every: that is no rule at all, to ask for, not "every 1 day".
    cleared = "cron" in data and "every" not in data and not values["cron"]
    values["unit"] = values["unit"] or "days"
    values["every"] = values["every"] or ("" if cleared else "1")
    if data.get("alias_for", values["package"]) != values["package"]:
        values["alias"] = ""  # another package chosen in place: its aliases are its own
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
    type's come (with the contract's values) unless there; the user's own rows stay as they are."""
    new = _shown(new_type)
    kept = [
        [name, value]
        for name, value in rows
        if name in new or name not in _shown(old_type) or value != DEFAULTS.get(name)
    ]
    present = {name for name, _ in kept}
    return kept + [[name, DEFAULTS[name]] for name in new if name not in present]


def _param_rows(parameters: dict, type_: str) -> list[list[str]]:
    """Parameters worth showing: the user's own, those changed from the contract's defaults, and the
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
    inputs = schedule.inputs
    version = str(inputs.get("version", ""))
    # An alias stays one: each firing runs the version it points at then.
    alias = "" if _NUMBER.fullmatch(version) else version
    major, _, minor = ("", "", "") if alias else version.partition(".")
    zone = schedule.starts_at.astimezone(ZoneInfo(schedule.timezone))
    return _base_values(
        type=inputs.get("type", "train"),
        name=schedule.name,
        package=inputs.get("package", ""),
        major=major,
        minor=minor,
        alias=alias,
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
    if not seconds or int(seconds) >= settings.PIPELINE_MAX_RUN_SECONDS:
        return ""
    return f"{int(seconds) / 60:g}"


class ParameterRows(forms.Widget):
    """The form's parameter rows, as form_values reads them (name, value pairs)."""

    def value_from_datadict(self, data, files, name):
        return data.get("params", [])


class ParametersField(forms.Field):
    """Rows → {name: value}; a row with a value but no name, or a name given twice, is an
    error. What the names and values may be is the services' check (clean_parameters)."""

    widget = ParameterRows

    def to_python(self, rows):
        parameters, problems = {}, []
        for number, (name, value) in enumerate(rows or [], start=1):
            if not name and not str(value).strip():
                continue
            if not name:
                problems.append(f"Row {number} has a value but no name.")
            elif name in parameters:
                problems.append(f"'{name}' is given twice.")
            else:
                parameters[name] = value
        if problems:
            raise ValidationError(problems)
        return parameters


class MinutesField(forms.CharField):
    """A time limit in minutes → seconds (None: no limit given)."""

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            minutes = float(text)
        except ValueError:
            raise ValidationError("The time limit is a number of minutes, like 90.") from None
        if not minutes > 0:  # also NaN
            raise ValidationError("The time limit must be positive: a number of minutes, like 90.")
        if minutes == float("inf"):
            raise ValidationError("The time limit is a number of minutes, like 90.")
        return max(1, round(minutes * 60))


class PipelineForm(forms.Form):
    """Create pipeline (and Edit of a recurring one): what only the form has (parameter rows,
    the time limit in minutes, 'when to run' in separate inputs) cleaned into the arguments
    pipeline_start and schedule_update take. Which package, version and datasets exist is the
    services' check, so the API and the form refuse the same things."""

    type = forms.ChoiceField(choices=PipelineRun.TYPES)
    name = forms.CharField(required=False, max_length=200)
    package = forms.CharField(required=False)
    major = forms.CharField(required=False)
    minor = forms.CharField(required=False)
    alias = forms.CharField(required=False)
    dataset = forms.CharField(required=False)
    dataset_folder = forms.CharField(required=False)
    evaluation_dataset = forms.CharField(required=False)
    evaluation_folder = forms.CharField(required=False)
    gpu = forms.BooleanField(required=False)
    parameters = ParametersField(required=False)
    time_limit = MinutesField(required=False)
    when = forms.ChoiceField(
        choices=[("now", "Now"), ("at", "At a given time"), ("recurring", "Recurring")]
    )
    at = forms.CharField(required=False)
    timezone = forms.CharField(required=False)
    every = forms.CharField(required=False)
    unit = forms.CharField(required=False)
    cron = forms.CharField(required=False)
    starts_at = forms.CharField(required=False)

    def clean(self):
        data = super().clean()
        try:
            data["schedule"] = clean_when(self._when(data))
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error(field if field in self.fields else "when", messages)
        return data

    def _when(self, data) -> dict | None:
        """'When to run' as clean_when takes it."""
        when = data.get("when")
        if when == "at":
            if not data.get("at"):
                raise ValidationError({"schedule": "Choose the date and time to run at."})
            return {"at": data["at"], "timezone": data.get("timezone")}
        if when == "recurring":
            if not data.get("cron") and not data.get("every"):
                raise ValidationError(
                    {
                        "cron": "A recurring pipeline needs a rule: a cron expression here, or "
                        "'Every' N hours, days or weeks above."
                    }
                )
            rule = (
                {"cron": data["cron"]}
                if data.get("cron")
                else {"every": data.get("every"), "unit": data.get("unit")}
            )
            return {**rule, "timezone": data.get("timezone"), "starts_at": data.get("starts_at")}
        return None

    def inputs(self) -> dict:
        """The run's inputs as clean_run_inputs takes them, also from a form with errors (so
        the services still check the rest, and the user sees every problem at once)."""
        data = {**self.data, **getattr(self, "cleaned_data", {})}
        type_ = data.get("type", "")
        evaluate, train = type_ == PipelineRun.EVALUATE, type_ == PipelineRun.TRAIN
        parameters = data.get("parameters")
        return {
            "type": type_,
            "package": data.get("package", ""),
            "version": data.get("alias") or f"{data.get('major', '')}.{data.get('minor', '')}",
            "dataset": "" if evaluate else data.get("dataset", ""),
            "dataset_folder": "" if evaluate else data.get("dataset_folder", ""),
            "evaluation_dataset": "" if train else data.get("evaluation_dataset", ""),
            "evaluation_folder": "" if train else data.get("evaluation_folder", ""),
            "parameters": parameters if isinstance(parameters, dict) else {},
            "gpu": bool(data.get("gpu")),
            "max_run_seconds": self.cleaned_data.get("time_limit") if self.is_bound else None,
        }


LAST_LOG_CHUNK = 2**31 - 1  # LogChunk.seq's largest value on every database


def log_after(data) -> int:
    """The `after` of a log poll: the number of the last log chunk the page has (0: none)."""
    raw = (data.get("after") or "0").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= LAST_LOG_CHUNK):
        raise ValidationError(
            {"after": f"after must be the number of a log chunk (0 or more), not '{raw[:40]}'."}
        )
    return int(raw)
