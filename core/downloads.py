"""HTTP responses for files of a manifest, shared by the pages and the API."""

from django.http import FileResponse, Http404
from ninja import Schema

from core.blobs import CorruptBlob, blob_open
from core.manifests import manifest_file, manifest_files, manifest_zip_file

INLINE_POLICY = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
)


def file_response(manifest, path: str, *, as_attachment=True) -> FileResponse:
    entry = manifest_file(manifest, path)
    if entry is None:
        raise Http404(f"There is no file '{path}'.")
    try:
        stored = blob_open(entry.blob)
    except (FileNotFoundError, CorruptBlob) as error:
        # Served never, whatever the page asked: storage_check tells the operator which.
        raise Http404(
            f"The stored bytes of '{path}' are missing or damaged; an operator can find "
            "out more with manage.py storage_check."
        ) from error
    response = FileResponse(stored, as_attachment=as_attachment, filename=path.rsplit("/", 1)[-1])
    if not as_attachment:
        # Shown in the page (an image, or an HTML report in the preview's iframe): whatever a
        # package wrote, it runs no script, loads nothing from anywhere, and as a document of
        # its own opaque origin (sandbox) it reads nothing of AI Center's. Only this site may
        # frame it: the pages' own policy forbids any framing.
        response["Content-Security-Policy"] = INLINE_POLICY
        response["X-Content-Type-Options"] = "nosniff"
        response["X-Frame-Options"] = "SAMEORIGIN"
    return response


def zip_response(manifest, *, filename: str, prefix: str = "", root: str = "") -> FileResponse:
    return FileResponse(
        manifest_zip_file(manifest, prefix=prefix, root=root),
        as_attachment=True,
        filename=filename,
        content_type="application/zip",
    )


class FileOut(Schema):
    path: str
    size: int


class FilesOut(Schema):
    files: list[FileOut]


def files_listing(manifest, prefix: str = "") -> dict:
    """The API's `{"files": [{"path", "size"}]}` for the files of a manifest under `prefix`
    (a dataset, artifacts, a snapshot)."""
    return {"files": [{"path": p, "size": s} for p, s in manifest_files(manifest, prefix)]}
