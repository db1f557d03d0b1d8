"""Small helpers shared by the apps' page views."""

from dataclasses import dataclass
from functools import cached_property

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Case, Count, F, Sum, Value, When
from django.db.models.functions import Left, StrIndex, Substr
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseClientRedirect

from aicenter.manifests import Folder, clean_folder, under_folder
from aicenter.previews import file_preview


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
# reading it, and a page of 100 keeps a folder of 10,000 files under 50 ms (issue 13).
FOLDER_PAGE = 100


@dataclass
class FolderSummary:
    """What the file tree's head says of a folder: the files and bytes of its whole sub-tree,
    and how many sub-folders and files it holds itself."""

    folder: str
    file_count: int
    size: int
    folder_count: int
    files_here: int

    @property
    def is_empty(self):
        return not self.folder_count and not self.files_here


class FolderRows:
    """One folder's rows, sub-folders (by name, with their sub-trees' file counts and sizes)
    then files (by path), for a Paginator: two queries, never the 10,000 entries of a big tree
    as Python objects. The sub-tree is grouped once by the sub-folder each entry is in (the
    folder's own files in one group, ''), which gives the folder rows and the totals; then
    the page's files are read."""

    def __init__(self, manifest, folder: str):
        self.folder, self.prefix = folder, folder + "/" if folder else ""
        entries = manifest.entries.all()
        if self.prefix:
            entries = entries.filter(under_folder(self.prefix))
        if self.prefix and connection.vendor == "sqlite":
            # SQLite compares text byte by byte, so a folder's paths are one range of the
            # (manifest, path) index ('/' + 1 is '0'); its LIKE ignores case and can't use
            # it. PostgreSQL's collation may not keep them together: there LIKE filters.
            entries = entries.filter(path__gte=self.prefix, path__lt=self.prefix[:-1] + "0")
        # the path inside the folder (few string functions: they are most of the query's time)
        rest = Substr("path", len(self.prefix) + 1) if self.prefix else F("path")
        slash = StrIndex(rest, Value("/"))  # 0: a file of this very folder (or its marker)
        self.entries = entries.alias(slash=slash)
        self.child = Case(  # the sub-folder it is in, '' for this folder's own
            When(slash__gt=0, then=Left(rest, slash - 1)), default=Value("")
        )

    @cached_property
    def groups(self) -> list[dict]:
        """{child, file_count, size} of each sub-folder, by name (in Python: a few rows), and
        of the folder's own files (child '') first."""
        grouped = self.entries.annotate(child=self.child).values("child").order_by()
        grouped = grouped.annotate(file_count=Count("blob"), size=Sum("size"))
        return sorted(grouped, key=lambda group: (group["child"].lower(), group["child"]))

    @cached_property
    def totals(self) -> FolderSummary:
        own = [group for group in self.groups if group["child"] == ""]
        return FolderSummary(
            folder=self.folder,
            file_count=sum(group["file_count"] for group in self.groups),
            size=sum(group["size"] for group in self.groups),
            folder_count=len(self.groups) - len(own),
            files_here=own[0]["file_count"] if own else 0,  # not counting its empty marker
        )

    def count(self):
        return self.totals.folder_count + self.totals.files_here

    def __len__(self):
        return self.count()

    def __getitem__(self, window: slice):
        start, stop = window.start or 0, window.stop
        folders = [group for group in self.groups if group["child"] != ""]
        rows = [
            ("folder", Folder(g["child"], self.prefix + g["child"], g["file_count"], g["size"]))
            for g in folders[start:stop]
        ]
        if stop > len(folders):
            files = self.entries.filter(slash=0, blob__isnull=False).order_by("path")
            window = files[max(start - len(folders), 0) : stop - len(folders)]
            rows += [("file", entry) for entry in window]
        return rows


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
