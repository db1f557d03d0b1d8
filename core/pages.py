"""Small helpers shared by the apps' page views."""

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseClientRedirect

from core.manifests import FolderRows, clean_folder
from core.previews import file_preview


def form_errors(error: ValidationError) -> dict[str, list[str]]:
    """Field → messages; messages not tied to a field go under 'general'."""
    if hasattr(error, "error_dict"):
        return {field: list(messages) for field, messages in error.message_dict.items()}
    return {"general": list(error.messages)}


def bad_request(request, error: ValidationError, **context):
    """The 400 page, saying in words what is wrong with the link's parameters; `context` may
    give the project and where to go `back` to (with its `back_label`)."""
    message = " ".join(error.messages)
    return render(request, "400.html", {**context, "message": message}, status=400)


def done(request, url):
    """After a successful POST: a redirect, or for htmx a client-side one (full page load)."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def folder_breadcrumbs(folder: str) -> list[dict[str, str]]:
    """'a/b' → [{name: a, path: a}, {name: b, path: a/b}], for the file browsers' path bar."""
    parts = folder.split("/") if folder else []
    return [{"name": part, "path": "/".join(parts[: i + 1])} for i, part in enumerate(parts)]


# A folder's rows per page of the file browsers: rendering a row costs about as much as
# reading it, and a page of 100 keeps even a folder of 10,000 files quick to show.
FOLDER_PAGE = 100


def folder_context(request, manifest, *, folder: str | None = None) -> dict:
    """What partials/file_tree.html and partials/preview.html need to show one folder of a
    manifest (?path=) and, with ?file=, a preview of one of its files: two queries whatever
    the size of the tree (its sub-folders and totals, the page's files)."""
    if folder is None:
        try:
            folder = clean_folder(request.GET.get("path", ""))
        except ValidationError:
            folder = ""
    rows = FolderRows(manifest, folder)
    wanted = request.GET.get("file")
    return {
        "folder": folder,
        "breadcrumbs": folder_breadcrumbs(folder),
        "listing": rows.totals,
        "page": page_of(request, rows, per_page=FOLDER_PAGE),
        "preview": file_preview(manifest, wanted) if wanted else None,
    }


def page_of(request, items, per_page=100):
    return Paginator(items, per_page).get_page(request.GET.get("page"))


# Runs listed on a delete confirmation page; the rest are counted.
USED_BY_SHOWN = 50


def delete_confirmation(request, project, *, thing, name, runs, kept=0, errors=None, **urls):
    """The page before deleting a dataset or package: the unfinished runs that use it (with
    links), or the button that deletes it, saying how many finished runs (`kept`, all the runs
    that used it when none is unfinished) keep their history. `urls`: back_url, action_url
    and optionally runs_url (all the runs, filtered); `what` says what goes with it."""
    context = {
        "project": project,
        "thing": thing,
        "name": name,
        "kept": kept,
        "run_count": runs.count(),
        "runs": runs[:USED_BY_SHOWN],
        "errors": errors or {},
        **urls,
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "confirm_delete.html", context, status=status)
