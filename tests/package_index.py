"""The tests' own package index, configured as the operator's (an extra index, UV_EXTRA_INDEX_URL,
in the environment of the session and of the workers it starts), and the packages tests put on
it: real wheels and sdists made here, served as PEP 503 pages over HTTP on loopback.

A project the index does not hold answers 404, so uv looks for it on PyPI next, as it does for
an operator's internal index beside PyPI. A test serves its projects for its own duration only
(`serving`)."""

import base64
import hashlib
import io
import os
import tarfile
import threading
import time
import zipfile
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

WHEEL = "Wheel-Version: 1.0\nGenerator: aicenter-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel(name: str, version: str, files: dict[str, str]) -> tuple[str, bytes]:
    """A real wheel (its file name and bytes) holding `files` (path → text) at the root of
    site-packages, with the METADATA, WHEEL and RECORD installers check."""
    stem = f"{name.replace('-', '_')}-{version}"
    dist_info = f"{stem}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    contents = {path: text.encode() for path, text in files.items()}
    contents[f"{dist_info}/METADATA"] = metadata.encode()
    contents[f"{dist_info}/WHEEL"] = WHEEL.encode()
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in contents.items()]
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = "".join(f"{line}\n" for line in record).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
    return f"{stem}-py3-none-any.whl", buffer.getvalue()


def sdist(name: str, version: str, setup_py: str) -> tuple[str, bytes]:
    """A source distribution (file name and bytes) whose build runs `setup_py` (setuptools)."""
    stem = f"{name.replace('-', '_')}-{version}"
    files = {
        "setup.py": setup_py,
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n',
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{stem}/{path}")
            info.size, info.mtime = len(data), int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return f"{stem}.tar.gz", buffer.getvalue()


class PackageIndex:
    """A PEP 503 simple index on 127.0.0.1. `url` is its /simple/ URL; `requests[project]`
    counts the page requests per project."""

    def __init__(self):
        self.files: dict[str, dict[str, bytes]] = {}  # project → file name → bytes
        self.delays: dict[str, float] = {}
        self.requests: dict[str, int] = {}
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                index.answer(self)

            def do_HEAD(self):  # uv asks before it downloads
                index.answer(self, body=False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def answer(self, request, body: bool = True) -> None:
        parts = request.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] == "simple":
            project = _normalised(parts[1])
            self.requests[project] = self.requests.get(project, 0) + 1
            time.sleep(self.delays.get(project, 0))
            if project not in self.files:
                return self._send(request, 404, b"not here", "text/plain", body)
            links = "".join(
                f'<a href="/files/{project}/{name}#sha256={hashlib.sha256(data).hexdigest()}">'
                f"{name}</a>\n"
                for name, data in self.files[project].items()
            )
            page = f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()
            return self._send(request, 200, page, "text/html", body)
        if len(parts) == 3 and parts[0] == "files":
            data = self.files.get(parts[1], {}).get(parts[2])
            if data is not None:
                return self._send(request, 200, data, "application/octet-stream", body)
        self._send(request, 404, b"not here", "text/plain", body)

    @staticmethod
    def _send(request, status, content, content_type, body=True):
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        if body:
            request.wfile.write(content)

    @contextmanager
    def serving(self, project: str, *distributions: tuple[str, bytes], delay: float = 0.0):
        """Serve `project` with these (file name, bytes) for the block's duration, each page
        `delay` seconds late (no distributions: a project with no version at all)."""
        project = _normalised(project)
        self.files[project] = dict(distributions)
        self.delays[project] = delay
        self.requests[project] = 0
        try:
            yield self
        finally:
            self.files.pop(project, None)
            self.delays.pop(project, None)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def package_index():
    """The session's own package index (tests/package_index.py), set up as the operator's extra
    index for the builds of this process and of the workers started after it."""
    index = PackageIndex()
    previous = os.environ.get("UV_EXTRA_INDEX_URL")
    os.environ["UV_EXTRA_INDEX_URL"] = " ".join(filter(None, [index.url, previous]))
    yield index
    if previous is None:
        os.environ.pop("UV_EXTRA_INDEX_URL", None)
    else:
        os.environ["UV_EXTRA_INDEX_URL"] = previous
    index.close()
