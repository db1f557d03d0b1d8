"""MLflow's scoring server, the side bench/skills_bench.py measures against: an echo model saved
with a Python that has mlflow, served by `mlflow models serve`."""

import http.client
import json
import os
import subprocess
import time
from contextlib import closing
from pathlib import Path

from http_calls import Target
from pipeline_bench import free_port

MLFLOW_MODEL = """\
import sys

import mlflow.pyfunc


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


mlflow.pyfunc.save_model(sys.argv[1], python_model=Echo())
"""


class MlflowScoring:
    """`mlflow models serve` of the echo model on a free loopback port."""

    def __init__(self, python, processes, model, workers):
        self.python, self.processes, self.model = Path(python), processes, model
        self.workers, self.port = workers, free_port()

    def __enter__(self):
        venv_bin = str(self.python.parent)
        # it runs `uvicorn` by name: the venv's bin must be on PATH
        env = {**os.environ, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
        for name in ("AICENTER_DATA_DIR", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"):
            env.pop(name, None)
        command = [
            str(self.python), "-m", "mlflow", "models", "serve", "-m", str(self.model),
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(self.port),
            "-w", str(self.workers),
        ]  # fmt: skip
        self.process = self.processes.start(f"mlflow-serve-{self.workers}", command, env=env)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"mlflow models serve exited: see {self.process.log_path}")
            # each uvicorn worker loads the model: wait for all of them, then ask
            started = self.process.log_path.read_text().count("Application startup complete")
            if started >= self.workers:
                try:
                    with closing(
                        http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    ) as probe:
                        probe.request("GET", "/ping")
                        if probe.getresponse().status == 200:
                            return self
                except OSError:
                    pass
            time.sleep(0.2)
        raise SystemExit(f"mlflow models serve did not start: see {self.process.log_path}")

    def __exit__(self, *exc):
        self.processes.stop(self.process)

    def target(self, body):
        """Calls of /invocations with `body` (JSON), expected to be answered as predictions."""
        expected = {"predictions": json.loads(body)}
        wrapped = json.dumps({"inputs": json.loads(body)}).encode()
        return Target(self.port, "/invocations", wrapped, {}, expected)


def mlflow_model(python, scratch) -> Path:
    folder = scratch / "mlflow"
    folder.mkdir()
    script = folder / "save_model.py"
    script.write_text(MLFLOW_MODEL)
    model = folder / "echo-model"
    answer = subprocess.run(
        [str(python), str(script), str(model)], capture_output=True, text=True, cwd=folder
    )
    if answer.returncode:
        raise SystemExit(f"saving the MLflow model failed:\n{answer.stderr[-3000:]}")
    return model


def mlflow_version(python) -> str:
    command = [str(python), "-c", "import mlflow; print(mlflow.__version__)"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
