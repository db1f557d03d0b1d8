"""What bench/metrics_bench.py measures against: the same work on both sides (a training loop,
as our package and as MLflow's client script; the learning curves of the compared runs), and
MLflow's tracking server: `mlflow server` on a free loopback port with a SQLite store, read
through its REST API. That needs a Python with mlflow installed (a venv of its own: mlflow is
no dependency of the project)."""

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request

from pipeline_bench import free_port

# One training step: a small SGD on one sample in pure Python, about 0.1 ms here, so 100,000
# logged points are 10,000 a second. The same source runs in our package and in MLflow's client.
LOOP = """
def train_loop(steps, log, features=1500):
    weights = [0.0] * features
    sample = [(i % 7) / 7 for i in range(features)]
    for step in range(steps):
        error = sum(w * x for w, x in zip(weights, sample)) - 1.0
        weights = [w - 2e-7 * error * x for w, x in zip(weights, sample)]
        log(step, error * error)
"""
TRAIN = (
    "import json\nimport os\nimport time\n"
    + LOOP
    + """
class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        path, way = os.environ["metrics_file"], os.environ["logging"]
        if way == "each_point":
            def log(step, value):
                with open(path, "a") as out:
                    out.write(json.dumps({"name": "loss", "value": value, "step": step}) + "\\n")
        elif way == "formatted":  # kept open, a line at a time, the JSON formatted by hand
            out = open(path, "a", buffering=1)

            def log(step, value):
                out.write(f'{{"name": "loss", "value": {value!r}, "step": {step}}}\\n')
        elif way != "nothing":  # kept open: a line at a time (live), or 8 KiB at a time
            if way == "unread":  # the same writes, to a file the platform does not read
                path += ".unread"
            out = open(path, "a", buffering=-1 if way == "buffered" else 1)

            def log(step, value):
                out.write(json.dumps({"name": "loss", "value": value, "step": step}) + "\\n")
        else:
            def log(step, value):
                pass
        train_loop(int(os.environ["points"]), log)
        print(f"CPU {time.process_time()}")  # the process's own, whatever else the machine does

    def evaluate(self, evaluation_directory):
        return 1.0

    def save(self):
        pass
"""
)
METRICS = ["accuracy", "f1", "loss", "precision", "recall"]
PARAMETERS = {"learning_rate": "0.01", "epochs": "10", "batch_size": "32"}


def curve(points, *, run=0, metric=0, start=1.8e9):
    """(step, value, time) of a falling learning curve with some noise, the same for both."""
    return [
        (
            step,
            1 / (1 + step * (1 + run / 10) / 1000) + ((step * 7919 + metric * 104729) % 997) / 1e5,
            start + step * 0.01,
        )
        for step in range(points)
    ]


def compared_points(points, run):
    return {name: curve(points, run=run, metric=index) for index, name in enumerate(METRICS)}


# Run with MLflow's Python: the training loop, logging nothing or through log_batch
# (1000 points a call, its most), interleaved; prints the times and the last logged run.
LOG_SCRIPT = """
import json
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
%(loop)s
uri, points, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(uri)
experiment = client.create_experiment("logging")
times = {"nothing": [], "log_batch": []}
for _ in range(repeat):
    began = time.perf_counter()
    train_loop(points, lambda step, value: None)
    times["nothing"].append(time.perf_counter() - began)
    began = time.perf_counter()
    run_id, batch = client.create_run(experiment).info.run_id, []

    def log(step, value):
        batch.append(Metric("loss", value, int(time.time() * 1000), step))
        if len(batch) == 1000:
            client.log_batch(run_id, metrics=batch)
            batch.clear()

    train_loop(points, log)
    if batch:
        client.log_batch(run_id, metrics=batch)
    client.set_terminated(run_id)
    times["log_batch"].append(time.perf_counter() - began)
print(json.dumps({"times": times, "run_id": run_id}))
"""


def http_get(url, headers=None, body=None) -> bytes:
    """The answer's body (a POST of `body` as JSON if given): both servers are read alike."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return response.read()


def runserver(manage) -> tuple[subprocess.Popen, str]:
    """Our side: `manage.py runserver` on a free port (as pipeline_bench.py starts it)."""
    port = free_port()
    command = [sys.executable, str(manage), "runserver", f"127.0.0.1:{port}", "--noreload"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            http_get(f"http://127.0.0.1:{port}/login/")
            break
        except OSError:
            time.sleep(0.1)
    return server, f"http://127.0.0.1:{port}"


class MlflowServer:
    def __init__(self, python, folder):
        self.python, self.folder, self.port = python, folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = folder / "mlflow.db"

    def __enter__(self):
        # Its job runner (GenAI jobs, nothing to do with tracking) would only take CPU here.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        command = [
            self.python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
            str(self.port), "--backend-store-uri", f"sqlite:///{self.db}",
            "--default-artifact-root", str(self.folder / "artifacts"),
        ]  # fmt: skip
        log = open(self.folder / "server.log", "w")  # noqa: SIM115 - the server's whole life
        self.server = subprocess.Popen(
            command, stdout=log, stderr=log, env=env, start_new_session=True
        )
        for _ in range(240):  # the first start creates its tables: half a minute here
            try:
                http_get(f"{self.url}/health")
                return self
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"mlflow server did not start: see {self.folder / 'server.log'}")

    def __exit__(self, *exc):
        os.killpg(self.server.pid, 15)  # its uvicorn workers are in its process group
        self.server.wait()

    def api(self, path, body=None):
        return json.loads(http_get(f"{self.url}/api/2.0/mlflow/{path}", body=body))

    def log_loop(self, points, repeat) -> dict:
        """The training loop with and without log_batch, in MLflow's own client."""
        script = self.folder / "log.py"
        script.write_text(LOG_SCRIPT % {"loop": LOOP})
        command = [self.python, str(script), self.url, str(points), str(repeat)]
        answer = subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(answer.stdout.splitlines()[-1])

    def compared_runs(self, runs, parameters) -> tuple[str, list[str]]:
        """A run per item of `runs` ({name: [(step, value, time)]}) with `parameters`. The runs
        and parameters go through its API, the points into its SQLite tables directly:
        log_batch stores about 2,700 points a second here, so 5,000,000 would take half an
        hour. Everything is read back through its API."""
        experiment = self.api("experiments/create", {"name": "compare"})["experiment_id"]
        ids = []
        params = [{"key": key, "value": value} for key, value in parameters.items()]
        for _ in runs:
            run = self.api("runs/create", {"experiment_id": experiment})["run"]
            self.api("runs/log-batch", {"run_id": run["info"]["run_id"], "params": params})
            ids.append(run["info"]["run_id"])
        columns = "(key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)"
        with sqlite3.connect(self.db) as db:
            for run_id, metrics in zip(ids, runs, strict=True):
                for name, points in metrics.items():
                    rows = [(name, v, int(t * 1000), run_id, step, 0) for step, v, t in points]
                    db.executemany(f"INSERT INTO metrics {columns}", rows)
                    db.execute(f"INSERT INTO latest_metrics {columns}", rows[-1])
        return experiment, ids

    def history(self, run_id, name) -> str:
        return f"{self.url}/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key={name}"

    def sampled(self, run_ids, name, max_results=1000) -> str:
        """What its UI's charts read: at most `max_results` points of each run."""
        runs = "&".join(f"run_ids={run_id}" for run_id in run_ids)
        return (
            f"{self.url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?{runs}"
            f"&metric_key={name}&max_results={max_results}"
        )

    def search(self, experiment, run_ids) -> bytes:
        """runs/search of these runs: their parameters, tags and each metric's last value."""
        listed = ", ".join(f"'{run_id}'" for run_id in run_ids)
        body = {"experiment_ids": [experiment], "filter": f"attributes.run_id IN ({listed})"}
        return http_get(f"{self.url}/api/2.0/mlflow/runs/search", body=body)
