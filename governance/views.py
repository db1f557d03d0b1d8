from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode

from core.events import CATEGORIES
from core.pages import bad_request, form_errors
from core.services import project_get_for_user
from governance.exports import event_csv
from governance.selectors import (
    PAGE_OF_EVENTS,
    SEARCH_SPAN,
    EventPage,
    event_links,
    event_list,
    event_page,
)

# The page's GET parameters; `q` is the free-text search (the API's name too).
FILTERS = ("category", "actor", "object", "since", "until", "q")


def _filters(request) -> dict[str, str]:
    return {key: request.GET.get(key, "") for key in FILTERS}


def _selected(filters: dict) -> dict:
    """The parameters as event_list takes them."""
    return {("text" if key == "q" else key): value for key, value in filters.items()}


@login_required
def project_logs(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    filters = _filters(request)
    status, errors = 200, {}
    try:
        cursor = request.GET.get("cursor", "")
        page = event_page(project=project, **_selected(filters), cursor=cursor)
    except ValidationError as error:  # the form again, each field with what is wrong
        page, status, errors = EventPage([], first=None), 400, form_errors(error)
    event_links(project, page.events)
    query = urlencode({key: value for key, value in filters.items() if value})
    context = {
        "project": project,
        "page": page,
        "filters": filters,
        "errors": errors,
        "query": query,
        "categories": CATEGORIES,
        "per_page": PAGE_OF_EVENTS,
        "search_span": SEARCH_SPAN,
        "actors": project.memberships.values_list("user__username", flat=True),
    }
    return render(request, "governance/logs.html", context, status=status)


@login_required
def project_logs_export(request, project):
    """Every event that passes the page's filters, as CSV, streamed: not just one page."""
    project = project_get_for_user(user=request.user, slug=project)
    try:
        events = event_list(project=project, **_selected(_filters(request)))
    except ValidationError as error:
        back = reverse("project-logs", args=[project.slug])
        return bad_request(request, error, project=project, back=back, back_label="ML Logs")
    response = StreamingHttpResponse(event_csv(events), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-ml-logs.csv"'
    return response
