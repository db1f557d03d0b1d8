"""Messages through Redis, signed: whoever can write to Redis (a build that reached it on the
network, a neighbour on a Redis without a password) can't make a worker or a skill host act on a
message of their own. Every message the platform puts in Redis for another process to act on
(RQ's jobs, skill calls and their answers, call records) carries an HMAC-SHA256 of its bytes,
keyed by SECRET_KEY through Django's salted_hmac, and the reader checks it before it parses a
byte of what follows.

A message is signed for where it goes (`to`: a queue, a list's key): the same bytes moved to
another list don't verify there, so a skill's signed call can't be replayed to another skill,
nor one call's answer handed to another caller. SECRET_KEY_FALLBACKS verify too, as they do
for Django's own signatures, so rotating the key loses no queued job.
"""

import hmac

from django.conf import settings
from django.utils.crypto import salted_hmac

SALT = "aicenter.redis"
# 64 hex digits of HMAC-SHA256, then the payload.
SIGNATURE_LENGTH = 64


class BadSignature(Exception):
    """The message wasn't signed by this installation for where it was found."""


def sign(payload: bytes, *, to: str) -> bytes:
    """`payload`, signed for `to`."""
    return _signature(payload, to, settings.SECRET_KEY) + payload


def verified(message: bytes, *, to: str) -> bytes:
    """The payload of a signed `message` found at `to`, once its signature is checked (and
    before anything reads it). Raises BadSignature."""
    if not isinstance(message, bytes | bytearray | memoryview):
        raise BadSignature("not bytes")
    message = bytes(message)
    signature, payload = message[:SIGNATURE_LENGTH], message[SIGNATURE_LENGTH:]
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        if hmac.compare_digest(signature, _signature(payload, to, secret)):
            return payload
    raise BadSignature(f"the signature of a message at {to} doesn't verify")


def _signature(payload: bytes, to: str, secret) -> bytes:
    signature = _keyed(secret).copy()  # the key's setup done once per secret, not per message
    signature.update(to.encode() + b"\n")
    signature.update(payload)
    return signature.hexdigest().encode()


_keys = {}


def _keyed(secret):
    """HMAC-SHA256 keyed by a key derived from `secret` for these messages only (SALT)."""
    if secret not in _keys:
        _keys[secret] = salted_hmac(SALT, b"", secret=secret, algorithm="sha256")
    return _keys[secret]
