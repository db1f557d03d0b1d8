from datetime import datetime

from ninja import Field, File, Form, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import ConfigDict

from core.downloads import FileOut, FilesOut, file_response, files_listing
from core.errors import ErrorOut
from core.manifests import clean_folder, clean_path, manifest_file
from core.services import project_get_for_user
from core.uploads import request_body
from datasets.selectors import dataset_get, dataset_list
from datasets.services import (
    NAME_PATTERN,
    dataset_create,
    dataset_delete,
    dataset_file_put,
    dataset_folder_create,
    dataset_path_delete,
    dataset_zip_upload,
)

router = Router(tags=["datasets"])


class DatasetIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(json_schema_extra={"maxLength": 100, "pattern": NAME_PATTERN})
    description: str = ""


class DatasetOut(Schema):
    name: str
    description: str
    file_count: int = 0
    size: int = 0
    created_at: datetime


@router.get("/{project}/datasets", response=list[DatasetOut])
def list_datasets(request, project: str):
    project = project_get_for_user(user=request.user, slug=project)
    return list(dataset_list(project=project))


class FolderIn(Schema):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    folder: str = ""  # where to make it; the dataset's top by default


class FolderOut(Schema):
    path: str


class UnpackedOut(Schema):
    files: int  # how many files the zip held


@router.post("/{project}/datasets", response={201: DatasetOut, 409: ErrorOut})
def create_dataset(request, project: str, payload: DatasetIn):
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_create(
        project=project, user=request.user, name=payload.name, description=payload.description
    )
    return Status(201, dataset_get(project=project, name=dataset.name, with_totals=True))


@router.get("/{project}/datasets/{dataset}", response=DatasetOut)
def get_dataset(request, project: str, dataset: str):
    project = project_get_for_user(user=request.user, slug=project)
    return dataset_get(project=project, name=dataset, with_totals=True)


@router.delete("/{project}/datasets/{dataset}", response={204: None, 409: ErrorOut})
def delete_dataset(request, project: str, dataset: str):
    project = project_get_for_user(user=request.user, slug=project)
    dataset_delete(user=request.user, dataset=dataset_get(project=project, name=dataset))
    return Status(204, None)


@router.post("/{project}/datasets/{dataset}/folders", response={201: FolderOut})
def create_folder(request, project: str, dataset: str, payload: FolderIn):
    """An empty folder `name` inside `folder` (as the page's New folder does)."""
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_get(project=project, name=dataset)
    path = dataset_folder_create(
        user=request.user, dataset=dataset, folder=payload.folder, name=payload.name
    )
    return Status(201, {"path": path})


@router.post("/{project}/datasets/{dataset}/zip", response={201: UnpackedOut})
def upload_zip(
    request, project: str, dataset: str, zip: UploadedFile = File(None), folder: str = Form("")
):
    """Unpack a zip (multipart field `zip`) into `folder`, replacing files of the same paths.
    A zip that is damaged, unsafe or too big stores nothing (400)."""
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_get(project=project, name=dataset)
    count = dataset_zip_upload(user=request.user, dataset=dataset, folder=folder, file=zip)
    return Status(201, {"files": count})


@router.get("/{project}/datasets/{dataset}/files", response={200: FilesOut, 400: ErrorOut})
def list_files(request, project: str, dataset: str, prefix: str = ""):
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_get(project=project, name=dataset)
    return files_listing(dataset.manifest, clean_folder(prefix))


@router.put("/{project}/datasets/{dataset}/files/{path:path}", response={201: FileOut})
def put_file(request, project: str, dataset: str, path: str):
    """The request's body becomes the file at `path`. A body shorter than its Content-Length
    (an interrupted upload), or not matching `x-checksum-sha256` (hex or base64) or
    `Content-MD5` when sent, is refused with 400 and stores nothing."""
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_get(project=project, name=dataset)
    dataset_file_put(user=request.user, dataset=dataset, path=path, fileobj=request_body(request))
    entry = manifest_file(dataset.manifest, clean_path(path))
    return Status(201, {"path": entry.path, "size": entry.size})


@router.get("/{project}/datasets/{dataset}/files/{path:path}", response={200: None, 400: ErrorOut})
def get_file(request, project: str, dataset: str, path: str):
    project = project_get_for_user(user=request.user, slug=project)
    dataset = dataset_get(project=project, name=dataset)
    return file_response(dataset.manifest, clean_path(path))


@router.delete("/{project}/datasets/{dataset}/files/{path:path}", response={204: None})
def delete_file(request, project: str, dataset: str, path: str):
    project = project_get_for_user(user=request.user, slug=project)
    dataset_path_delete(
        user=request.user, dataset=dataset_get(project=project, name=dataset), path=path
    )
    return Status(204, None)
