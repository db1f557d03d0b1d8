"""The runs list page: its filters, its search (pipelines/run_search.py) and its pages."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils.http import urlencode

from core.pages import bad_request
from core.services import RUN, can, project_get_for_user
from packages.selectors import package_list
from pipelines.comparison import MOST_COMPARED_RUNS
from pipelines.models import PipelineRun
from pipelines.queue_places import waiting_for
from pipelines.run_pages import PAGE_OF_RUNS, pipeline_run_page
from pipelines.selectors import metric_names


def _page_offset(raw, per_page) -> int:
    """?page=N (old links, bookmarks) as an offset; anything but a page number is page 1."""
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 9 else 1
    return (max(number, 1) - 1) * per_page


@login_required
def pipeline_list(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    keys = ("status", "type", "package", "schedule", "metric", "sort", "filter")
    filters = {key: request.GET.get(key, "") for key in keys}
    listed = {("search" if key == "filter" else key): value for key, value in filters.items()}
    cursor = request.GET.get("cursor", "")
    offset = 0 if cursor else _page_offset(request.GET.get("page", ""), PAGE_OF_RUNS)
    search_error = ""
    try:
        page = pipeline_run_page(project=project, **listed, cursor=cursor, offset=offset)
        if not page.runs and (cursor or offset):
            # past the end (a page number too high, or runs deleted since): the last page
            page = pipeline_run_page(project=project, **listed, last=True)
    except ValidationError as error:
        if "filter" not in error.message_dict:
            return bad_request(
                request, error, project=project, back=request.path, back_label="All runs"
            )
        # said beside the search box, which keeps what was typed to be corrected
        search_error, page = " ".join(error.message_dict["filter"]), []
    counts = {}  # each queue's live workers, counted once for the page
    for run in page:
        run.waiting_for = waiting_for(run, counts)
    query = {k: v for k, v in filters.items() if v}
    here = {"cursor": cursor} if cursor else {"page": request.GET["page"]} if offset else {}
    context = {
        "project": project,
        "page": page,
        "filters": filters,
        "query": urlencode(query),
        "here": urlencode({**query, **here}),  # this very page, for the htmx poll
        "unsorted": urlencode({k: v for k, v in query.items() if k != "sort"}),
        "metric_names": [] if request.htmx else metric_names(project=project),
        "polling": any(not run.is_settled for run in page),
        "statuses": PipelineRun.STATUSES,
        "types": PipelineRun.TYPES,
        "packages": package_list(project=project).values_list("name", flat=True),
        "can_edit": can(project, RUN),
        "killable": any(not run.is_finished for run in page),  # a column only for Kill
        "most_compared": MOST_COMPARED_RUNS,
        "search_error": search_error,
    }
    template = "pipelines/list.html#runs" if request.htmx else "pipelines/list.html"
    return render(request, template, context, status=400 if search_error else 200)
