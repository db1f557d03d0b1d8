"""The environment variables the package contract gives a run, and the checks on user
parameters."""

import re

from django.core.exceptions import ValidationError

from core.manifests import clean_path

DEFAULTS = {
    "artifacts_directory": "artifacts",
    "save_training_data": "false",
    "save_test_data": "false",
    "data_directory": "data",
    "training_data_directory": "dataset/training",
    "test_data_directory": "dataset/test",
}
DIRECTORIES = (
    "artifacts_directory",
    "data_directory",
    "training_data_directory",
    "test_data_directory",
)
FLAGS = ("save_training_data", "save_test_data")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The platform sets these for the process; a parameter may not replace them.
RESERVED = {
    *("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PWD", "SHELL", "USER"),
    *("metrics_file", "MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"),
}
RESERVED_PREFIXES = ("PYTHON", "LD_", "LC_", "CUDA_")


def clean_parameters(raw) -> dict[str, str]:
    """User parameters as {name: str value}, the contract's defaults filled in; ValidationError on
    'parameters' naming each bad one."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError({"parameters": "Parameters must be name → value pairs."})
    errors = []
    values = dict(DEFAULTS)
    for name, value in raw.items():
        name = str(name).strip()
        if not NAME.match(name):
            errors.append(
                f"'{name}' is not a valid variable name: use letters, digits and underscores, "
                "not starting with a digit."
            )
            continue
        if name in RESERVED or name.upper().startswith(RESERVED_PREFIXES):
            errors.append(f"'{name}' is set by the platform and can't be a parameter.")
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        if value is None or isinstance(value, dict | list):
            errors.append(f"{name}: the value must be text or a number.")
            continue
        value = str(value)
        if "\x00" in value:
            errors.append(f"{name}: the value contains a NUL character.")
            continue
        values[name] = value
    for name in FLAGS:
        values[name] = values[name].strip().lower()
        if values[name] not in ("true", "false"):
            errors.append(f"{name} must be true or false, not '{values[name]}'.")
    for name in DIRECTORIES:
        try:
            values[name] = clean_path(values[name], field="parameters")
        except ValidationError:
            errors.append(
                f"{name} must be a relative folder inside the workspace, not '{values[name]}'."
            )
    if errors:
        raise ValidationError({"parameters": errors})
    return values


def run_variables(run) -> dict[str, str]:
    """Exactly what the user's process sees besides PATH, HOME, TMPDIR and LANG."""
    return {**DEFAULTS, **{k: str(v) for k, v in run.parameters.items()}}


def ordered_parameters(parameters: dict) -> dict[str, str]:
    """The contract's variables in its order, then the user's own alphabetically: a stable order
    whatever the database did to the JSON (PostgreSQL's jsonb sorts keys its own way)."""
    spec = [name for name in DEFAULTS if name in parameters]
    own = sorted(name for name in parameters if name not in DEFAULTS)
    return {name: parameters[name] for name in spec + own}
