"""RQ entry points of the environments kit. Nothing else."""

from environments.environments import build_ahead


def build_environment(python_version: str, manifest_id: int, name: str = "") -> None:
    build_ahead(python_version, manifest_id, name)
