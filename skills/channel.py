"""How a call travels, through Redis only (web servers and skill hosts need no network path to
each other): the web server pushes the call onto its skill's request list and waits on a reply
list of its own; a skill host pops it, hands it to a replica, and pushes the answer back.

A message is a JSON header, a newline, then the body's bytes as they are, signed for the list
it is pushed onto (core.signatures): a call someone else pushed onto a skill's list is never
relayed to a replica, and an answer someone else pushed onto a caller's list is never taken for
the replica's (the caller waits on for the real one). Signed for its list, a skill's call
can't be replayed to another skill, nor one call's answer handed to another caller."""

import json
import logging
import time
import uuid

import redis
from django.conf import settings

from core.signatures import BadSignature, sign, verified

logger = logging.getLogger(__name__)

PREFIX = "aicenter:skill"
# An answer nobody waits for any more (the caller timed out) is dropped after this.
REPLY_TTL_SECONDS = 60
# A loaded replica says so at least this often; after READY_TTL without a word it is gone.
READY_TTL_SECONDS = 5.0

# A blocking pop is read this much longer than it may block: the caller's own limit ends the
# wait (504), never the socket's.
WAIT_MARGIN_SECONDS = 5.0

_clients: dict[tuple[str, float | None], redis.Redis] = {}
# KEYS: the ready set, the request list; ARGV: now, the message. Queues it if a replica is up.
SEND_IF_UP = """
if redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf') == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""


def connection(*, waits: float | None = None) -> redis.Redis:
    """This process's client (one connection pool per Redis URL). `waits`: for blocking pops
    of up to that many seconds, whose replies redis-py's default socket timeout (5 s) would
    give up on; a pool of their own, so other commands still fail fast on a stalled Redis."""
    url = settings.REDIS_URL
    read_timeout = None if waits is None else waits + WAIT_MARGIN_SECONDS
    if (url, read_timeout) not in _clients:
        options = {} if read_timeout is None else {"socket_timeout": read_timeout}
        _clients[url, read_timeout] = redis.Redis.from_url(url, health_check_interval=30, **options)
    return _clients[url, read_timeout]


def _send_if_up(client):
    if not hasattr(client, "send_if_up"):
        client.send_if_up = client.register_script(SEND_IF_UP)  # EVALSHA once loaded
    return client.send_if_up


def requests_key(skill_id: int) -> str:
    return f"{PREFIX}:{skill_id}:requests"


def ready_key(skill_id: int) -> str:
    return f"{PREFIX}:{skill_id}:ready"


def reply_key(call_id: str) -> str:
    return f"{PREFIX}:reply:{call_id}"


def encode(header: dict, body: bytes = b"", *, to: str) -> bytes:
    """The message for the list `to` (its key)."""
    return sign(json.dumps(header).encode() + b"\n" + body, to=to)


def decode(message: bytes, *, to: str) -> tuple[dict, bytes]:
    """(header, body) of a message found on the list `to`, once its signature is checked.
    Raises BadSignature."""
    header, _, body = verified(message, to=to).partition(b"\n")
    return json.loads(header), body


class NoReplica(Exception):
    """No replica of the skill is up (503)."""


class CallTimeout(Exception):
    """No answer within the call's time limit (504)."""


class Unreachable(Exception):
    """Redis can't be reached, or stopped answering while the call waited (503)."""


def replicas_up(skill_id: int, client=None) -> int:
    return (client or connection()).zcount(ready_key(skill_id), time.time(), "+inf")


def send(skill_id: int, body: bytes, *, timeout: float) -> tuple[dict, bytes]:
    """The replica's answer to one call: (header, body). Raises NoReplica, CallTimeout or
    Unreachable."""
    client = connection(waits=timeout)
    call_id = uuid.uuid4().hex
    requests, replies = requests_key(skill_id), reply_key(call_id)
    now = time.time()
    header = {"id": call_id, "deadline": now + timeout}
    try:
        # one round trip: is a replica up, and the call queued only if one is
        queued = _send_if_up(client)(
            keys=[ready_key(skill_id), requests], args=[now, encode(header, body, to=requests)]
        )
        if not queued:
            raise NoReplica
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            answer = client.blpop([replies], timeout=left)
            if answer is None:
                break
            try:
                return decode(answer[1], to=replies)
            except BadSignature:
                logger.warning(
                    "skill %s: an answer to call %s not signed, dropped", skill_id, call_id
                )
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise Unreachable(str(error)) from error
    raise CallTimeout


def answer(client, call_id: str, header: dict, body: bytes = b"") -> None:
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(reply_key(call_id), encode(header, body, to=reply_key(call_id)))
        pipe.expire(reply_key(call_id), REPLY_TTL_SECONDS)
        pipe.execute()


def say_ready(client, skill_id: int, replica: str) -> None:
    client.zadd(ready_key(skill_id), {replica: time.time() + READY_TTL_SECONDS})


def say_gone(client, skill_id: int, replica: str) -> None:
    client.zrem(ready_key(skill_id), replica)
