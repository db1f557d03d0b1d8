"""The sandbox, attacked through the network: Redis, PostgreSQL, the web server, the internet;
and the project setting that allows outbound network.

The sandbox tests' helpers are in tests/pipelines/sandboxing.py, their fixtures in
tests/pipelines/conftest.py."""

import json
import socket

import pytest

from tests.pipelines.sandboxing import API, files_of, log_of, run_here

# Committed rows: the runner's watch thread reads the run on a connection of its own; the runs
# are executed here, never by a worker.
pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]


# 4. The network: Redis, PostgreSQL, the web server, the internet.


@pytest.fixture
def listener():
    """A TCP server on this machine's loopback, as Redis or PostgreSQL would be."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


CONNECT = """
results = {}
for name, port in json.loads(ENV["ports"]).items():
    results[name] = attempt(lambda: socket.create_connection(("127.0.0.1", port), 2).close())
results["interfaces"] = [name for _, name in socket.if_nameindex()]
(OUT / "network.json").write_text(json.dumps(results))
"""


def test_package_code_has_no_network(db, project, bob, listener):
    ports = {"listener": listener, "postgresql": 5432, "redis": 6379}
    run = run_here(project, bob, CONNECT, parameters={"ports": json.dumps(ports)})
    assert run.status == "successful", run.failure_reason
    results = json.loads(files_of(run.artifacts)["network.json"])
    assert results["interfaces"] == ["lo"]
    for name in ports:
        assert results[name] == "ConnectionRefusedError", name
    assert run.sandbox["network"] is False
    assert run.results["run_summary"]["sandbox"]["network"] is False


def test_a_project_admin_may_allow_outbound_network(db, project, bob, alice, listener, api_as):
    api = api_as(bob)
    refused = api.patch(f"{API}", {"allow_network": True}, content_type="application/json")
    assert refused.status_code == 403
    answer = api_as(alice).patch(API, {"allow_network": True}, content_type="application/json")
    assert answer.status_code == 200 and answer.json()["allow_network"] is True
    project.refresh_from_db()
    run = run_here(project, bob, CONNECT, parameters={"ports": json.dumps({"x": listener})})
    assert json.loads(files_of(run.artifacts)["network.json"])["x"] == "done"
    assert run.results["run_summary"]["sandbox"]["network"] is True
    assert "outbound network allowed by the project" in log_of(run)
