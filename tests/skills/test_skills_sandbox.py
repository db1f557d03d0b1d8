"""Attacks from a skill's own code: its replicas run in the runs' sandbox, so they can't read
the server's secrets or files, reach Redis or the network, break the host by writing to its
pipe, take more memory than a replica may, or have a keyring or user namespace of their own."""

import json

import pytest
from django.conf import settings

from tests.conftest import stop, wait_until
from tests.pipelines.sandboxing import KERNEL_ATTEMPTS, assert_kernel_refused
from tests.skills.conftest import deploy, predict, start_skill_host, wait_available

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = """\
import json, os, socket


class Main:
    def __init__(self):
        pass

    def predict(self, input):
        order = json.loads(input)
        if order["do"] == "env":
            return sorted(os.environ)
        if order["do"] == "read":
            try:
                return open(order["path"]).read()
            except OSError as error:
                return f"refused: {error}"
        if order["do"] == "connect":
            try:
                if order.get("unix"):
                    sock = socket.socket(socket.AF_UNIX)
                    sock.connect(order["unix"])
                else:
                    socket.create_connection((order["host"], order["port"]), timeout=2)
                return "connected"
            except OSError as error:
                return f"refused: {error}"
        if order["do"] == "garbage":
            import __main__
            os.write(__main__._out, bytes.fromhex(order["hex"]))
            return "after the garbage"
        if order["do"] == "allocate":
            block = bytearray(order["mb"] * 1024 * 1024)
            return len(block)
        if order["do"] == "kernel":
            return kernel_attempts()
        return "?"
"""


@pytest.fixture
def hostile(api, echo, sandboxed, transactional_db):
    host = start_skill_host(env={"AICENTER_SKILL_MEMORY_MB": "256"})
    echo(main=HOSTILE + KERNEL_ATTEMPTS)
    deploy(api)
    wait_available(api)
    yield lambda **order: predict(api, body=json.dumps(order))
    stop(host)


def test_no_server_secret_in_its_environment(hostile):
    names = hostile(do="env").json()
    for secret in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AWS_SECRET_ACCESS_KEY"):
        assert secret not in names
    assert not any(name.startswith(("DJANGO", "AICENTER")) for name in names)


def test_no_server_file(hostile, secret_text="not for replicas"):
    secret = settings.DATA_DIR / "secret.txt"
    secret.write_text(secret_text)
    try:
        for path in (secret, settings.DATA_DIR / "db.sqlite3", "/etc/shadow", "/root/.bashrc"):
            answer = hostile(do="read", path=str(path)).content.decode()
            assert answer.startswith("refused:"), (path, answer)
    finally:
        secret.unlink()


def test_no_redis_and_no_network(hostile):
    url = settings.REDIS_URL
    if url.startswith("unix://"):
        answer = hostile(do="connect", unix=url.removeprefix("unix://").split("?")[0])
    else:
        answer = hostile(do="connect", host="127.0.0.1", port=6379)
    assert answer.content.decode().startswith("refused:")
    assert (
        hostile(do="connect", host="127.0.0.1", port=5432).content.decode().startswith("refused:")
    )
    assert hostile(do="connect", host="1.1.1.1", port=53).content.decode().startswith("refused:")


@pytest.mark.parametrize(
    "garbage",
    [
        "ffffffff",  # a frame of 4 GB announced
        "00000005" + b"nope\n".hex(),  # a frame whose header is not JSON
    ],
)
def test_garbage_on_its_pipe_fails_that_call_and_it_is_restarted(hostile, garbage):
    response = hostile(do="garbage", hex=garbage)
    assert response.status_code == 502
    wait_until(lambda: hostile(do="env").status_code == 200, 10, "not restarted")


def test_over_its_memory_limit_predict_fails_and_it_keeps_serving(hostile):
    response = hostile(do="allocate", mb=512)
    assert response.status_code == 422, response.content
    assert response.json()["detail"].startswith("MemoryError")
    assert hostile(do="allocate", mb=10).json() == 10 * 1024 * 1024


def test_no_keyring_and_no_user_namespace_of_its_own(hostile):
    answer = hostile(do="kernel")
    assert answer.status_code == 200, answer.content
    assert_kernel_refused(answer.json())
