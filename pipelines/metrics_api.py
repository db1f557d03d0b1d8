"""The API of a run's metrics, and of runs compared side by side."""

from django.http import JsonResponse
from ninja import Query, Router, Schema

from core.errors import pattern
from core.services import project_get_for_user
from pipelines.comparison import MOST_COMPARED_RUNS, compared_run_ids, run_comparison
from pipelines.metrics import metric_points
from pipelines.selectors import pipeline_run_get

router = Router(tags=["metrics"])
# A chart is at most a few thousand pixels wide: more points than this are never needed.
MOST_POINTS = 100_000
RUN_IDS = pattern(
    rf"^[0-9]{{1,18}}(,[0-9]{{1,18}}){{0,{MOST_COMPARED_RUNS - 1}}}$",
    f"ids are 1 to {MOST_COMPARED_RUNS} run numbers separated by commas, like 1,2,3.",
)


class Point(Schema):
    step: int
    value: float | None  # null: the package logged NaN or infinity
    time: str


class MetricsOut(Schema):
    metrics: dict[str, list[Point]]


class Summary(Schema):
    last: float | None
    min: float | None
    max: float | None
    steps: int


class ComparedRun(Schema):
    id: int
    name: str
    status: str
    package: str
    version: str
    parameters: dict[str, str]
    logged_params: dict[str, str]
    score: float | None
    metrics: dict[str, Summary]


class ComparisonOut(Schema):
    runs: list[ComparedRun]


@router.get("/{project}/pipelines/compare", response=ComparisonOut)
def compare_pipelines(request, project: str, ids: str = Query(..., pattern=RUN_IDS)):  # noqa: B008
    """Runs side by side (`ids=1,2,3`, at most 10): their parameters, logged parameters,
    score and each metric's last, min and max value and number of steps."""
    project = project_get_for_user(user=request.user, slug=project)
    return {"runs": run_comparison(project=project, ids=compared_run_ids(ids))}


@router.get("/{project}/pipelines/{run_id}/metrics", response=MetricsOut)
def get_metrics(
    request,
    project: str,
    run_id: int,
    names: str = "",
    max_points: int | None = Query(None, ge=2, le=MOST_POINTS),  # noqa: B008
):
    """The run's metrics, points in step order as logged (`time`: when the worker read it);
    `names=loss,accuracy` for some of them; `max_points=N` downsamples each on the server to at
    most N points, keeping its shape (the lowest and highest point of each stretch) and its
    first and last point. While the run runs, points appear within about two seconds."""
    project = project_get_for_user(user=request.user, slug=project)
    run = pipeline_run_get(project=project, run_id=run_id)
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    points = metric_points(run, names=wanted, max_points=max_points)
    # Already in MetricsOut's shape: checking thousands of points against it would double the
    # answer's time (the schema stays in the API's documentation).
    return JsonResponse({"metrics": points})
