"""Checks an ML package zip against the package contract (docs/using.md) without running any
of its code.

Everything is decided from the zip's central directory, from parsing the Python sources with
`ast` and from reading requirements.txt's lines (none may change where packages come from:
environments/requirement_sources.py), before a single byte is stored.
"""

import ast
import zipfile
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError

from core.zips import open_safe_zip
from environments.requirement_sources import refusals

# A requirements.txt is read this far (the environment builds read no further).
REQUIREMENTS_MAX_BYTES = 1024 * 1024
REQUIRED_METHODS = {
    "main.py": ["__init__", "predict"],
    "train.py": ["__init__", "train", "evaluate", "save"],
}


@dataclass
class PackageArchive:
    """A validated zip: `files` maps each path relative to the package root to its zip entry."""

    zip: zipfile.ZipFile
    files: dict[str, zipfile.ZipInfo]

    def open(self, path):
        return self.zip.open(self.files[path])


def _fail(message):
    raise ValidationError({"file": [message] if isinstance(message, str) else message})


def _strip_single_root(files: dict[str, zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """Accept zips whose root is one top-level folder (AI Center names it like the zip)."""
    tops = {path.split("/", 1)[0] for path in files}
    if len(tops) == 1 and all("/" in path for path in files):
        top = tops.pop()
        return {path[len(top) + 1 :]: info for path, info in files.items()}
    return files


def _class_methods(tree: ast.Module, class_name: str) -> tuple[ast.ClassDef | None, set[str]]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            methods = {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            return node, methods
    return None, set()


def main_methods(source: bytes) -> set[str] | None:
    """The methods class Main defines in a source file; None when they can't be known without
    running code (a syntax error, or methods that may be inherited)."""
    try:
        cls, methods = _class_methods(ast.parse(source), "Main")
    except (SyntaxError, ValueError):
        return None
    return None if cls is None or cls.bases else methods


def _check_source(path: str, source: bytes) -> list[str]:
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as error:
        return [f"{path}: line {error.lineno}: {error.msg}."]
    except ValueError as error:  # e.g. null bytes
        return [f"{path}: {error}."]
    cls, methods = _class_methods(tree, "Main")
    if cls is None:
        return [f"{path}: there is no class Main."]
    if cls.bases:
        return []  # methods may be inherited: we don't run code to find out
    return [
        f"{path}: class Main has no method {method}"
        for method in REQUIRED_METHODS[path]
        if method not in methods
    ]


def read_package_zip(upload, *, training_enabled: bool) -> PackageArchive:
    """Open and check an uploaded package zip; raise ValidationError naming every problem."""
    archive, files = open_safe_zip(upload, max_bytes=settings.PACKAGE_MAX_UNCOMPRESSED_BYTES)
    if not files:
        _fail("The zip is empty.")
    files = _strip_single_root(files)

    required = ["main.py", "requirements.txt"] + (["train.py"] if training_enabled else [])
    missing = [name for name in required if name not in files]
    errors = [f"{name} is missing from the package root." for name in missing]
    for path in ("main.py", "train.py"):
        if path in files and (path == "main.py" or training_enabled):
            errors += _check_source(path, archive.read(files[path]))
    if "requirements.txt" in files and not settings.REQUIREMENTS_ALLOW_SOURCES:
        with archive.open(files["requirements.txt"]) as requirements:
            text = requirements.read(REQUIREMENTS_MAX_BYTES).decode("utf-8", errors="replace")
        errors += refusals(text)
    if errors:
        _fail(errors)
    return PackageArchive(zip=archive, files=files)
