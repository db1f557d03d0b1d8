"""Previews of stored files for the pages: text, JSON, CSV as a table, images, Markdown as
sanitized HTML, and HTML documents, which the page shows in a sandboxed iframe from the file's
own address (served with a policy that lets nothing in them run: aicenter/downloads.py)."""

import csv
import io
import json
from dataclasses import dataclass, field

from core.manifests import blob_open, manifest_file
from core.markdown_html import render_markdown

MAX_TEXT = 512 * 1024
CSV_ROWS = 50
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
HTML_SUFFIXES = {".html", ".htm"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}


@dataclass
class Preview:
    path: str
    size: int
    kind: str  # text, json, csv, image, html, markdown, binary, missing
    text: str = ""
    html: str = ""  # markdown's, sanitized
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False


def file_preview(manifest, path: str) -> Preview:
    entry = manifest_file(manifest, path)
    if entry is None:
        return Preview(path=path, size=0, kind="missing")
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in IMAGE_TYPES:
        return Preview(path=path, size=entry.size, kind="image")
    if suffix in HTML_SUFFIXES:
        return Preview(path=path, size=entry.size, kind="html")
    with blob_open(entry.blob) as stored:
        head = stored.read(MAX_TEXT + 1)
    truncated = len(head) > MAX_TEXT
    try:
        text = head[:MAX_TEXT].decode("utf-8")
    except UnicodeDecodeError:
        if not truncated:
            return Preview(path=path, size=entry.size, kind="binary")
        text = head[:MAX_TEXT].decode("utf-8", errors="ignore")
    if "\x00" in text:
        return Preview(path=path, size=entry.size, kind="binary")
    if suffix == ".json" and not truncated:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            return Preview(path=path, size=entry.size, kind="json", text=text)
        except ValueError:
            pass
    if suffix in (".csv", ".tsv"):
        reader = csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        rows = [row for _, row in zip(range(CSV_ROWS + 1), reader, strict=False)]
        return Preview(
            path=path,
            size=entry.size,
            kind="csv",
            rows=rows[:CSV_ROWS],
            truncated=truncated or len(rows) > CSV_ROWS,
        )
    if suffix in MARKDOWN_SUFFIXES:
        html = render_markdown(text)
        return Preview(path=path, size=entry.size, kind="markdown", html=html, truncated=truncated)
    return Preview(path=path, size=entry.size, kind="text", text=text, truncated=truncated)
