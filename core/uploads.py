"""Raw request bodies (the API's PUT of a file), checked before anything is stored.

A client whose connection drops midway sends fewer bytes than its Content-Length announced,
and the server only sees the body end early: stored as it came, the first 1,000 bytes would
replace a good file. So the body must be as long as announced and match the checksums the
client sent, if any: `x-checksum-sha256` (hex or base64) and `Content-MD5` (base64, as RFC 1864
has it, or hex). A body that is not whole stores nothing, and the file it was to replace stays.
"""

import base64
import binascii
import hashlib

from django.core.exceptions import ValidationError

SHA256_HEADER = "x-checksum-sha256"
MD5_HEADER = "Content-MD5"
ALGORITHMS = {SHA256_HEADER: ("SHA-256", 32), MD5_HEADER: ("MD5", 16)}  # header → (name, size)


class ReceivedBody:
    """A request body read as a file that checks, when its end comes, that it arrived whole:
    the last read raises ValidationError instead of returning the end of a broken body.

    Storage reads a file to its end before storing anything (core.manifests spools it to a
    temporary file first), so a broken body stores nothing."""

    def __init__(self, stream, *, length: int | None, checksums: dict[str, tuple[str, bytes]]):
        self.stream = stream
        self.length = length
        self.checksums = checksums  # header → (value as sent, digest)
        self.digests = {
            SHA256_HEADER: hashlib.sha256(),
            MD5_HEADER: hashlib.md5(usedforsecurity=False),
        }
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self.received += len(data)
            for header in self.checksums:
                self.digests[header].update(data)
        elif size != 0:
            self._check()
        return data

    def _check(self) -> None:
        if self.length is not None and self.received != self.length:
            if self.received < self.length:
                problem = (
                    f"The upload was cut short: {self.received:,} of the {self.length:,} bytes "
                    "announced by Content-Length arrived."
                )
            else:
                problem = (
                    f"{self.received:,} bytes arrived, more than the {self.length:,} announced "
                    "by Content-Length."
                )
            problem += " Nothing was stored; send the file again."
            raise ValidationError({"Content-Length": problem})
        for header, (sent, expected) in self.checksums.items():
            actual = self.digests[header].digest()
            if actual != expected:
                # said the way the client said it: hex or base64
                shown = actual.hex() if len(sent) == 2 * len(actual) else _base64(actual)
                name, _ = ALGORITHMS[header]
                raise ValidationError(
                    {
                        header: f"The file arrived corrupted: its {name} is {shown}, not the "
                        f"{sent} sent in {header}. Nothing was stored; send it again."
                    }
                )


def _base64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in value)


def _digest(header: str, value: str) -> bytes:
    """The digest a checksum header gives, hex or base64, or a ValidationError saying why not."""
    name, size = ALGORITHMS[header]
    if len(value) == 2 * size and _is_hex(value):
        return bytes.fromhex(value)
    try:
        digest = base64.b64decode(value, validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != size:
        raise ValidationError(
            {
                header: f"'{value}' is not a checksum: send the {name} digest of the file, "
                f"as {2 * size} hex digits or in base64."
            }
        )
    return digest


def request_body(request) -> ReceivedBody:
    """The body of `request` as a ReceivedBody, with the length and checksums its headers
    announce; a header that can't be read is a ValidationError naming it."""
    meta = request.META
    length = meta.get("CONTENT_LENGTH") or None
    if length is None and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Django reads a body without Content-Length as empty: an empty file would be stored
        raise ValidationError(
            {"Content-Length": "Send the file with a Content-Length header, not chunked."}
        )
    if length is not None:
        try:
            length = int(length)
        except ValueError:
            length = -1
        if length < 0:
            raise ValidationError({"Content-Length": f"'{meta['CONTENT_LENGTH']}' is not a size."})
    checksums = {}
    for header in ALGORITHMS:
        sent = request.headers.get(header, "").strip()
        if sent:
            checksums[header] = (sent, _digest(header, sent))
    return ReceivedBody(request, length=length, checksums=checksums)
