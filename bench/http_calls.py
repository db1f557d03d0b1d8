"""Calls through HTTP as bench/skills_bench.py makes them: one after another on a keep-alive
connection, or many callers at once, each call checked against the answer it expects."""

import http.client
import json
import threading
import time

from percentiles import percentile

WARM_CALLS = 50


class Http:
    """One keep-alive connection (HTTP/1.1, as a robot's client keeps it)."""

    def __init__(self, port):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, path, body, headers) -> tuple[int, bytes]:
        try:
            self.connection.request("POST", path, body=body, headers=headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # a new connection for the next call
            return 0, b""

    def close(self):
        self.connection.close()


class Target:
    """What a measure calls: a URL path on a port, with headers, and the answer it expects."""

    def __init__(self, port, path, body, headers, expected):
        self.port, self.path, self.body, self.expected = port, path, body, expected
        self.headers = {"Content-Type": "application/json", **headers}

    def ok(self, status, answer):
        try:
            return status == 200 and json.loads(answer) == self.expected
        except ValueError:
            return False


def sequential(target, calls):
    """Milliseconds of `calls` calls one after another on one connection (after some to warm
    up), and how many failed."""
    client, times, failed = Http(target.port), [], 0
    for _ in range(WARM_CALLS):
        client.post(target.path, target.body, target.headers)
    for _ in range(calls):
        began = time.perf_counter()
        status, answer = client.post(target.path, target.body, target.headers)
        times.append((time.perf_counter() - began) * 1000)
        failed += not target.ok(status, answer)
    client.close()
    return {
        "p50": percentile(times, 50),
        "p90": percentile(times, 90),
        "p99": percentile(times, 99),
        "failed": failed,
        "calls": calls,
    }


def concurrent(target, threads, seconds):
    """`threads` callers, each on its own keep-alive connection, for `seconds`: calls per
    second, failed calls, and the calls' p50 and p99."""
    start = threading.Barrier(threads + 1)
    results = []
    lock = threading.Lock()

    def caller():
        client, times, failed = Http(target.port), [], 0
        for _ in range(5):
            client.post(target.path, target.body, target.headers)
        start.wait()
        end = began_all[0] + seconds
        while (now := time.perf_counter()) < end:
            status, answer = client.post(target.path, target.body, target.headers)
            times.append((time.perf_counter() - now) * 1000)
            failed += not target.ok(status, answer)
        client.close()
        with lock:
            results.append((times, failed))

    began_all = [0.0]
    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    began_all[0] = time.perf_counter()
    start.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began_all[0]
    times = [t for ts, _ in results for t in ts]
    return {
        "per_second": len(times) / elapsed,
        "calls": len(times),
        "failed": sum(f for _, f in results),
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
    }
