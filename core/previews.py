"""Previews of stored files for the pages: text, JSON, CSV as a table, images."""

import csv
import io
import json
from dataclasses import dataclass, field

from core.manifests import blob_open, manifest_file

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


@dataclass
class Preview:
    path: str
    size: int
    kind: str  # text, json, csv, image, binary, missing
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False


def file_preview(manifest, path: str) -> Preview:
    entry = manifest_file(manifest, path)
    if entry is None:
        return Preview(path=path, size=0, kind="missing")
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix in IMAGE_TYPES:
        return Preview(path=path, size=entry.size, kind="image")
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
    return Preview(path=path, size=entry.size, kind="text", text=text, truncated=truncated)
