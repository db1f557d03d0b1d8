"""Writes for datasets and their files. Views and the API both call these."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.http import Http404
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone

from core.disk_space import data_disk_refuse_when_low
from core.errors import name_taken
from core.events import record
from core.in_use import refuse_live_runs
from core.manifests import (
    clean_folder,
    clean_path,
    manifest_create,
    manifest_delete,
    manifest_delete_path,
    manifest_put_file,
    manifest_put_files,
    manifest_put_folder,
)
from core.services import RUN, require
from core.zips import open_safe_zip
from datasets.models import Dataset

NAME_RE = re.compile(r"^[\w][\w.\- ]*$")
# The same rule for the name as given (before spaces around it are dropped), for the API schema.
NAME_PATTERN = r"^\s*\w[\w.\- ]*\s*$"


def _record(dataset, action, *, actor, message="", data=None, url=True):
    project = dataset.project
    return record(
        project=project,
        category="dataset",
        action=action,
        actor=actor,
        object_type="dataset",
        object_key=dataset.name,
        object_name=dataset.name,
        url=reverse("dataset-browse", args=[project.slug, dataset.name]) if url else "",
        message=message,
        data=data,
    )


def _uploaded(dataset, user, *, folder=""):
    """What records an upload, called in the transaction that stores its entries."""

    def then(entries):
        size = sum(entry.size for entry in entries)
        files = f"{len(entries)} file{'s' if len(entries) != 1 else ''}"
        where = f" in {folder}" if folder else ""
        _record(
            dataset,
            "files_uploaded",
            actor=user,
            message=f"{files}, {filesizeformat(size)}{where}".replace("\xa0", " "),
            data={"count": len(entries), "bytes": size},
        )

    return then


def dataset_create(*, project, user, name: str, description: str = "") -> Dataset:
    """A new, empty dataset. Every write here needs the Data scientist role (or Project
    admin) in the dataset's project: `user` is who does it."""
    require(user=user, project=project, need=RUN)
    name = name or ""
    too_long = len(name) > 100
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A name is required."})
    if not NAME_RE.match(name) or too_long:
        raise ValidationError(
            {
                "name": f"'{name}' is not a valid dataset name: use letters, digits, spaces, "
                "'.', '-' and '_' (100 at most), starting with a letter or digit."
            }
        )
    if Dataset.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": name_taken(f"A dataset named '{name}' already exists.")})
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                project=project,
                name=name,
                description=description,
                manifest=manifest_create(),
                created_by=user,
            )
            _record(dataset, "created", actor=user, message=description[:200] or "Dataset created")
            return dataset
    except IntegrityError:
        raise ValidationError(
            {"name": name_taken(f"A dataset named '{name}' already exists.")}
        ) from None


def _join(folder: str, path: str) -> str:
    return f"{folder}/{path}" if folder else path


def dataset_files_upload(*, user, dataset, files, folder: str = "") -> int:
    """Store uploaded files under `folder`. `files` is a list of (relative path, file object);
    relative paths may contain folders (a folder picked in the browser keeps them).

    All paths are checked before anything is stored; returns how many files were stored."""
    require(user=user, project=dataset.project, need=RUN)
    data_disk_refuse_when_low(field="files")
    folder = clean_folder(folder)
    if not files:
        raise ValidationError({"files": "Choose at least one file."})
    items = [(clean_path(_join(folder, path), field="files"), fileobj) for path, fileobj in files]
    return manifest_put_files(dataset.manifest, items, then=_uploaded(dataset, user, folder=folder))


def dataset_zip_upload(*, user, dataset, file, folder: str = "") -> int:
    """Unpack a zip into the dataset under `folder`, with the same safety checks as packages."""
    require(user=user, project=dataset.project, need=RUN)
    data_disk_refuse_when_low(field="zip")
    folder = clean_folder(folder)
    archive, members = open_safe_zip(
        file, max_bytes=settings.DATASET_ZIP_MAX_UNCOMPRESSED_BYTES, field="zip"
    )
    if not members:
        raise ValidationError({"zip": "The zip holds no files."})
    items = [
        (clean_path(_join(folder, name), field="zip"), archive.open(info))
        for name, info in members.items()
    ]
    return manifest_put_files(dataset.manifest, items, then=_uploaded(dataset, user, folder=folder))


def dataset_file_put(*, user, dataset, path: str, fileobj) -> None:
    """The API's PUT: one file at `path`, folders created as needed. `fileobj` may be a
    request body still arriving (an core.uploads.ReceivedBody, which refuses a body that
    did not arrive whole): it is read to its end into a temporary file before any write, and
    no transaction is open meanwhile. With SQLite a transaction holds the one write lock of
    the whole database, so a client sending slowly would hold up everyone's writes."""
    require(user=user, project=dataset.project, need=RUN)
    data_disk_refuse_when_low(field="file")
    manifest_put_file(dataset.manifest, clean_path(path), fileobj, then=_uploaded(dataset, user))


def dataset_folder_create(*, user, dataset, folder: str, name: str) -> str:
    """An empty folder `name` inside `folder`; returns its path."""
    require(user=user, project=dataset.project, need=RUN)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the new folder a name."})
    if "/" in name or "\\" in name:
        raise ValidationError(
            {"name": "A folder name can't contain '/' or '\\': create one folder at a time."}
        )
    path = clean_path(_join(clean_folder(folder), name), field="name")
    with transaction.atomic():
        manifest_put_folder(dataset.manifest, path)
        # an empty folder is a change of the dataset's tree, as files are: logged as such
        _record(
            dataset,
            "files_uploaded",
            actor=user,
            message=f"Folder {path} created",
            data={"count": 0, "bytes": 0, "folder": path},
        )
    return path


def dataset_path_delete(*, user, dataset, path: str) -> None:
    """Delete the file or the folder (with all it holds) at `path`."""
    require(user=user, project=dataset.project, need=RUN)
    path = clean_path(path)
    with transaction.atomic():
        if not manifest_delete_path(dataset.manifest, path):
            # an empty folder is stored as a marker 'path/'
            if not manifest_delete_path(dataset.manifest, path + "/"):
                # a well-formed path that names nothing: not found, like any missing thing
                raise Http404(f"There is no file or folder '{path}'.")
        _record(
            dataset, "files_deleted", actor=user, message=f"{path} deleted", data={"path": path}
        )


def dataset_delete(*, user, dataset) -> None:
    """Delete the dataset and its files. Refused while unfinished runs use it; if finished
    runs used it, its row stays as a tombstone those runs still name (their snapshots keep
    what they read), and its name is free again."""
    require(user=user, project=dataset.project, need=RUN)
    manifest = dataset.manifest
    try:
        with transaction.atomic():
            _record(dataset, "deleted", actor=user, message=dataset.description[:200], url=False)
            dataset.delete()
            manifest_delete(manifest)
        return
    except ProtectedError as error:  # runs read it: its only PROTECTed users
        refuse_live_runs(f"Dataset {dataset.name}", error.protected_objects)
    with transaction.atomic():
        _record(dataset, "deleted", actor=user, message=dataset.description[:200], url=False)
        Dataset.with_deleted.filter(pk=dataset.pk).update(deleted_at=timezone.now(), manifest=None)
        manifest_delete(manifest)
