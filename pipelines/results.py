"""`_results.json`, in the shape the package contract gives it. Keys that do not apply to a run
are null."""


def dataset_location(project, dataset, folder) -> str | None:
    if dataset is None:
        return None
    return f"{project.slug}/datasets/{dataset.name}" + (f"/{folder}" if folder else "")


def run_location(run, what: str) -> str:
    return f"{run.project.slug}/pipelines/{run.pk}/{what}"


def results_json(run) -> dict:
    started = run.started_at.timestamp() if run.started_at else None
    ended = run.finished_at.timestamp() if run.finished_at else None
    version = run.output_version
    return {
        "parameters": {
            "pipeline": run.name or f"Pipeline run {run.pk}",
            "inputs": {
                "package": run.package.name,
                "version": run.version.number,
                "train_data": dataset_location(run.project, run.dataset, run.dataset_folder),
                "evaluation_data": dataset_location(
                    run.project, run.evaluation_dataset, run.evaluation_folder
                ),
                # the truth: whether the worker really gave it a GPU, not whether it asked
                "gpu": "True" if run.gpu_devices else "False",
            },
            "env": run.ordered_parameters,
        },
        "run_summary": {
            "execution_time": round(ended - started, 3) if started and ended else None,
            "start_at": int(started) if started else None,
            "end_at": int(ended) if ended else None,
            "score": run.score,
            "outputs": {
                "train_data": run_location(run, "snapshot") if run.snapshot_id else None,
                "evaluation_data": (
                    run_location(run, "evaluation-snapshot") if run.evaluation_snapshot_id else None
                ),
                "artifacts_data": run_location(run, "artifacts") if run.artifacts_id else None,
                "package": run.package.name if version else None,
                "version": version.number if version else None,
            },
            # what the run's code was given: network or not, its limits (null before it ran)
            "sandbox": run.sandbox or None,
        },
    }
