"""Small helpers shared by the apps' page views."""

from dataclasses import dataclass
from functools import cached_property

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum, Value
from django.db.models.functions import Coalesce, Greatest, Lower, StrIndex, Substr
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


# A folder's rows per page of the file browsers.
FOLDER_PAGE = 200


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
    then files (by path), read a page at a time by SQL: a Paginator over it reads the page's
    rows only, never the 10,000 entries of a big tree as Python objects."""

    def __init__(self, manifest, folder: str):
        self.folder, self.prefix = folder, folder + "/" if folder else ""
        entries = manifest.entries.all()
        if self.prefix:
            entries = entries.filter(under_folder(self.prefix))
        rest = Substr("path", len(self.prefix) + 1)  # the path inside the folder
        slash = StrIndex(rest, Value("/"))  # 0: a file of this very folder
        self.entries = entries.alias(slash=slash)
        self.child = Substr(rest, 1, Greatest(slash - 1, Value(0)))  # its sub-folder's name
        self.below = Q(slash__gt=0)
        # the folder's own marker (an empty folder's) is a path equal to the prefix
        self.here = Q(slash=0) & ~Q(path=self.prefix)

    @cached_property
    def totals(self) -> FolderSummary:
        """One query over the sub-tree."""
        totals = self.entries.aggregate(
            file_count=Count("blob"),
            size=Coalesce(Sum("size"), 0),
            folder_count=Count(self.child, distinct=True, filter=self.below),
            files_here=Count("pk", filter=self.here),
        )
        return FolderSummary(folder=self.folder, **totals)

    def count(self):
        return self.totals.folder_count + self.totals.files_here

    def __len__(self):
        return self.count()

    def __getitem__(self, window: slice):
        start, stop = window.start or 0, window.stop
        rows = []
        folders = self.totals.folder_count
        if start < folders:
            grouped = (
                self.entries.filter(self.below)
                .annotate(child=self.child)
                .values("child")
                .annotate(file_count=Count("blob"), size=Coalesce(Sum("size"), 0))
                .order_by(Lower("child"), "child")
            )
            for row in grouped[start : min(stop, folders)]:
                path = self.prefix + row["child"]
                rows.append(("folder", Folder(row["child"], path, row["file_count"], row["size"])))
        if stop > folders:
            files = self.entries.filter(self.here).order_by("path")
            rows += [("file", entry) for entry in files[max(start - folders, 0) : stop - folders]]
        return rows


def folder_context(request, manifest, *, folder: str | None = None) -> dict:
    """What partials/file_tree.html and partials/preview.html need to show one folder of a
    manifest (?path=) and, with ?file=, a preview of one of its files: three queries whatever
    the size of the tree (its totals, the page's sub-folders, the page's files)."""
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
