"""deploy/kubernetes/, checked offline: every manifest against Kubernetes' own schemas
(kubernetes-validate, strict: a field Kubernetes doesn't know is an error), KEDA's resources
against KEDA's CRD schemas (deploy/kubernetes/schemas/, with unknown fields refused as the API
server's strict field validation refuses them), and the facts that tie the manifests to this
project: the settings it reads, its queues, its manage.py commands, how long a run may take.
One test runs a real worker: given SIGTERM, it finishes its job (what the grace period trusts)."""

import ast
import copy
import importlib.util
import re
import shutil
import signal
import subprocess
import time
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import django_rq
import pytest
from django.conf import settings
from django.core.management import get_commands, load_command_class
from gunicorn.config import Config as GunicornConfig
from rq import Queue
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from aicenter import health
from environments.records import BUILD_JOB_SLACK_SECONDS
from pipelines.services import JOB_TIMEOUT_SLACK_SECONDS
from tests.conftest import requires, start_worker, stop, wait_for_workers, wait_until

try:
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError:  # the dev extra is not installed
    jsonschema = kubernetes_validate = yaml = None

DEPLOY = Path(settings.BASE_DIR) / "deploy" / "kubernetes"
# The Kubernetes release whose schemas the manifests are checked against.
KUBERNETES_VERSION = "1.32"
# What KEDA's redis scaler reads from a trigger's metadata (pkg/scalers/redis_scaler.go, v2.20):
# the metadata is a free map of strings in the CRD, so a misspelled key would pass its schema.
KEDA_REDIS_PARAMETERS = {
    "address", "addresses", "host", "hosts", "port", "ports", "username", "password",
    "sentinelUsername", "sentinelPassword", "sentinelMaster", "unsafeSsl", "listName",
    "listLength", "activationListLength", "databaseIndex", "enableTLS",
}  # fmt: skip
# A worker stopped by the autoscaler finishes its run; what else it does before exiting
# (unregister from Redis, stop its scheduler) takes seconds: a minute is plenty.
WORKER_EXIT_SECONDS = 60


@pytest.fixture(autouse=True)
def _tools():
    requires(
        kubernetes_validate is not None,
        "kubernetes-validate, jsonschema or PyYAML is not installed (pip install -e '.[dev]')",
    )


# --- reading the manifests ----------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def _load(path: Path) -> tuple:
    return tuple(doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def documents() -> list[dict]:
    return [doc for path in manifest_files() for doc in _load(path)]


def of_kind(kind: str) -> list[dict]:
    return [doc for doc in documents() if doc["kind"] == kind]


def kind_and_name(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def named(kind: str, name: str) -> dict:
    (found,) = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    return found


def pod_templates() -> list[tuple[dict, dict]]:
    """(workload, pod spec) of every Deployment and Job."""
    return [
        (doc, doc["spec"]["template"]["spec"])
        for doc in documents()
        if doc["kind"] in ("Deployment", "Job")
    ]


def containers() -> list[tuple[dict, dict, dict]]:
    return [
        (workload, pod, container)
        for workload, pod in pod_templates()
        for container in pod.get("initContainers", []) + pod["containers"]
    ]


def config_map() -> dict:
    return named("ConfigMap", "aicenter-config")["data"]


def secret_data(name: str) -> dict:
    return named("Secret", name)["stringData"]


def queue_of(container: dict) -> str | None:
    """The queue an `rqworker` container works on (one per Deployment, for its autoscaling)."""
    args = container["args"]
    if args[:3] != ["python", "manage.py", "rqworker"]:
        return None
    queues = [a for a in args[3:] if not a.startswith("-")]
    assert len(queues) == 1, f"{container['name']}: one queue per worker Deployment: {queues}"
    return queues[0]


def workers() -> dict[str, tuple[dict, dict, dict]]:
    """queue -> (Deployment, pod spec, container) of its workers."""
    found = {}
    for workload, pod, container in containers():
        if queue := queue_of(container):
            assert queue not in found, f"two worker Deployments for the queue {queue}"
            found[queue] = (workload, pod, container)
    return found


def env_names(container: dict) -> set[str]:
    """Every variable the container is given: its own and those of the ConfigMaps and Secrets it
    takes whole (each of which must be defined here or in secret.example.yaml)."""
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(named("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            names |= set(secret_data(source["secretRef"]["name"]))
    return names


def env_value(container: dict, name: str) -> str | None:
    for variable in container.get("env", []):
        if variable["name"] == name:
            return variable.get("value")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            data = named("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            data = secret_data(source["secretRef"]["name"])
        if name in data:
            return data[name]
    return None


@cache
def settings_variables() -> frozenset[str]:
    """The environment variables aicenter/settings.py reads (os.environ.get/[...], envbool,
    envint), found in its source."""
    tree = ast.parse((Path(settings.BASE_DIR) / "aicenter" / "settings.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            function = ast.unparse(node.func)
            if function in ("os.environ.get", "os.getenv", "envbool", "envint"):
                if isinstance(node.args[0], ast.Constant):
                    found.add(node.args[0].value)
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            if isinstance(node.slice, ast.Constant):
                found.add(node.slice.value)
    return frozenset(found)


def mebibytes(quantity: str) -> float:
    units = {"Ki": 2**-10, "Mi": 1, "Gi": 2**10, "Ti": 2**20}
    number, unit = re.fullmatch(r"(\d+)([KMGT]i)", quantity).groups()
    return int(number) * units[unit]


# --- Kubernetes' schemas --------------------------------------------------------------------


def validate_kubernetes(doc: dict) -> None:
    """Raises kubernetes_validate's ValidationError (or SchemaNotFoundError: no kind is skipped)."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def k8s_documents():
    if yaml is None:  # no parameters: the tests below fail under CI=true, else skip
        return []
    return [
        pytest.param(doc, id=f"{path.name}:{doc['kind']}/{doc['metadata']['name']}")
        for path in manifest_files()
        for doc in _load(path)
        if not doc["apiVersion"].startswith("keda.sh/")
    ]


@pytest.mark.parametrize("doc", k8s_documents())
def test_it_is_valid_kubernetes(doc):
    validate_kubernetes(doc)


def test_it_catches_a_misspelled_field_in_a_kubernetes_manifest():
    web = copy.deepcopy(named("Deployment", "aicenter-web"))
    validate_kubernetes(web)
    probe = web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    probe["paht"] = probe.pop("path")
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        validate_kubernetes(web)


def test_it_catches_a_wrong_type_and_a_missing_field_in_a_kubernetes_manifest():
    job = copy.deepcopy(named("Job", "aicenter-migrate"))
    job["spec"]["backoffLimit"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_kubernetes(job)
    service = copy.deepcopy(named("Service", "aicenter-web"))
    del service["spec"]["ports"][0]["port"]
    with pytest.raises(kubernetes_validate.ValidationError, match="port"):
        validate_kubernetes(service)


# --- KEDA's CRD schemas ---------------------------------------------------------------------


def _structural(schema: dict) -> dict:
    """The CRD's schema as the API server applies it: an object's unknown fields are errors
    (kubectl's strict field validation) unless it allows them (additionalProperties or
    x-kubernetes-preserve-unknown-fields)."""
    schema = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-validations")}
    if schema.get("type") == "object" and "properties" in schema:
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            schema["additionalProperties"] = False
    for key in ("properties", "patternProperties"):
        if key in schema:
            schema[key] = {name: _structural(sub) for name, sub in schema[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            schema[key] = _structural(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [_structural(sub) for sub in schema[key]]
    return schema


@cache
def keda_schemas() -> dict:
    """(apiVersion, kind) -> a validator, from the CRDs in deploy/kubernetes/schemas/."""
    validators = {}
    for path in sorted((DEPLOY / "schemas").glob("*.yaml")):
        for crd in _load(path):
            assert crd["kind"] == "CustomResourceDefinition"
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _structural(version["schema"]["openAPIV3Schema"])
                validator = jsonschema.Draft7Validator(schema)
                validator.check_schema(schema)
                validators[(f"{group}/{version['name']}", kind)] = validator
    return validators


def validate_keda(doc: dict) -> None:
    key = (doc["apiVersion"], doc["kind"])
    assert key in keda_schemas(), f"no KEDA CRD in deploy/kubernetes/schemas/ for {key}"
    keda_schemas()[key].validate(doc)
    # The ObjectMeta of a custom resource is the API server's, not in the CRD's schema.
    assert set(doc["metadata"]) <= {"name", "namespace", "labels", "annotations"}
    # The CRD's one CEL rule (x-kubernetes-validations), which jsonschema can't run.
    spec = doc["spec"]
    if doc["kind"] == "ScaledObject" and "minReplicaCount" in spec:
        assert spec["minReplicaCount"] <= spec.get("maxReplicaCount", 100)


def keda_documents():
    if yaml is None:
        return []
    return [
        pytest.param(doc, id=f"{doc['kind']}/{doc['metadata']['name']}")
        for doc in documents()
        if doc["apiVersion"].startswith("keda.sh/")
    ]


def test_there_are_keda_resources_and_crd_schemas_for_them():
    kinds = {doc["kind"] for doc in documents() if doc["apiVersion"].startswith("keda.sh/")}
    assert kinds == {"ScaledObject", "TriggerAuthentication"}
    assert {kind for _, kind in keda_schemas()} >= kinds


@pytest.mark.parametrize("doc", keda_documents())
def test_it_is_valid_against_kedas_crd(doc):
    validate_keda(doc)


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda so: so["spec"].update(minReplicaCont=1), id="misspelled-field"),
        pytest.param(
            lambda so: so["spec"]["triggers"][0].update(metaData=so["spec"]["triggers"][0]),
            id="misspelled-nested-field",
        ),
        pytest.param(lambda so: so["spec"].update(maxReplicaCount="20"), id="wrong-type"),
        pytest.param(lambda so: so["spec"].pop("scaleTargetRef"), id="missing-required"),
        pytest.param(
            lambda so: so["spec"]["triggers"][0]["authenticationRef"].update(kind="Secret"),
            id="not-in-enum",
        ),
        pytest.param(lambda so: so["spec"].update(triggers=[]), id="no-trigger"),
    ],
)
def test_it_catches_a_broken_scaled_object(break_it):
    scaled_object = copy.deepcopy(named("ScaledObject", "aicenter-worker-pipelines"))
    validate_keda(scaled_object)
    break_it(scaled_object)
    with pytest.raises(jsonschema.ValidationError):
        validate_keda(scaled_object)


# --- this project's facts -------------------------------------------------------------------


def test_kustomization_applies_every_manifest_but_the_secrets_and_the_crds():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((DEPLOY / name).is_file() for name in listed)
    assert listed == {p.name for p in manifest_files()} - {"secret.example.yaml"}
    assert all(doc["metadata"].get("namespace", "aicenter") == "aicenter" for doc in documents())


def test_kustomize_builds_them():
    kubectl = shutil.which("kubectl")
    requires(kubectl is not None, "kubectl (with its built-in kustomize) is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    rendered = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    expected = [doc for doc in documents() if doc["kind"] != "Secret"]
    assert sorted(map(kind_and_name, rendered)) == sorted(map(kind_and_name, expected))
    for doc in rendered:  # as kustomize changed them (the image's tag)
        if doc["apiVersion"].startswith("keda.sh/"):
            validate_keda(doc)
        else:
            validate_kubernetes(doc)


def test_every_variable_set_is_one_the_settings_read():
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= settings_variables()  # the parser works
    for workload, _, container in containers():
        unknown = env_names(container) - settings_variables()
        assert not unknown, f"{workload['metadata']['name']} sets {unknown}: nothing reads them"


def test_every_process_shares_postgresql_redis_and_s3():
    """Unset, a pod would run on its own SQLite file, its own embedded Redis, its own disk."""
    for workload, _, container in containers():
        names = env_names(container)
        assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= names, workload["metadata"]["name"]
        assert env_value(container, "AICENTER_STORAGE") == "s3"
        assert env_value(container, "AICENTER_SANDBOX") != "off"
        assert urlsplit(env_value(container, "DATABASE_URL")).scheme.startswith("postgres")
    # what is secret stays in Secrets
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AWS_SECRET_ACCESS_KEY"):
        assert name not in config_map()


def test_every_container_runs_a_real_command():
    for workload, _, container in containers():
        # The image's ENTRYPOINT, tini, stays PID 1: it hands SIGTERM to the process alone
        # (RQ's warm shutdown) and reaps what the sandboxes leave.
        assert "command" not in container, f"{workload['metadata']['name']} replaces tini"
        args = container["args"]
        if args[:2] == ["python", "manage.py"]:
            name, rest = args[2], args[3:]
            assert name in get_commands(), f"manage.py has no command {name!r}"
            parser = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
            options = parser.parse_args(rest)  # raises CommandError on an unknown flag
            if name == "rqworker":
                assert set(options.args) <= set(settings.RQ_QUEUES)
        elif args[0] == "gunicorn":
            options = GunicornConfig().parser().parse_args(args[1:])
            (module,) = options.args
            assert module == settings.WSGI_APPLICATION.rsplit(".", 1)[0]
            assert importlib.util.find_spec(module)
        else:
            pytest.fail(
                f"{workload['metadata']['name']} runs {args}: neither manage.py nor gunicorn"
            )


def test_the_migration_job_migrates():
    job = named("Job", "aicenter-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # migrate, never asking anything: a Job has no one to answer
    assert container["args"] == ["python", "manage.py", "migrate", "--noinput"]


def test_web_probes_healthz_on_its_port_and_the_service_reaches_it():
    web = named("Deployment", "aicenter-web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    bind = container["args"][container["args"].index("--bind") + 1]
    assert int(bind.rsplit(":", 1)[1]) in ports.values()
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == health.PATH
        assert get["port"] in ports or get["port"] in ports.values()
        assert "httpHeaders" not in get  # /healthz answers any Host header, over http
    service = named("Service", "aicenter-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)
    # gunicorn's own grace for requests in flight fits in the pod's
    graceful = int(container["args"][container["args"].index("--graceful-timeout") + 1])
    assert web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > graceful


def test_each_deployment_selects_its_own_pods_only():
    deployments = of_kind("Deployment")
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"].items()
        for other in deployments:
            labels = other["spec"]["template"]["metadata"]["labels"].items()
            assert (selector <= labels) == (other is deployment), (
                f"{deployment['metadata']['name']} selects the pods of {other['metadata']['name']}"
            )


def test_workers_cover_the_queues_runs_go_to():
    assert set(workers()) >= {"pipelines", "gpu"}  # pipelines/inputs.py routes runs to these
    assert set(workers()) <= set(settings.RQ_QUEUES)


def test_a_worker_stopped_by_the_autoscaler_finishes_its_run_first():
    """RQ's warm shutdown: on SIGTERM a worker finishes its job. A run's job lasts at most the
    run's limit plus RQ's slack; an environment build's, its limit plus its slack."""
    max_run = int(config_map()["AICENTER_MAX_RUN_SECONDS"])
    build = int(
        config_map().get("AICENTER_BUILD_MAX_SECONDS", settings.ENVIRONMENT_BUILD_MAX_SECONDS)
    )
    longest_job = max(max_run + JOB_TIMEOUT_SLACK_SECONDS, build + BUILD_JOB_SLACK_SECONDS)
    for deployment, pod, _ in workers().values():
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= longest_job + WORKER_EXIT_SECONDS, deployment["metadata"]["name"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_given_sigterm_finishes_its_job_then_exits(tmp_path):
    """What that grace period relies on: RQ's warm shutdown, in this project's worker (which
    runs its jobs in its own process). SIGTERM stops it taking jobs, not the job it runs."""
    done = tmp_path / "done"
    # a plain job, no package code: no sandbox needed for it
    process = start_worker("default", env={"AICENTER_SANDBOX": "off"})
    try:
        wait_for_workers(1, queue="default", process=process)
        job = django_rq.get_queue("default").enqueue(
            "subprocess.run", ["sh", "-c", f"sleep 3 && touch {done}"], check=True
        )
        wait_until(lambda: job.get_status() == JobStatus.STARTED, 30, "the job never started")
        process.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert process.poll() is None, "the worker quit in the middle of its job"
        process.wait(timeout=30)
        assert done.exists()
        assert job.get_status() == JobStatus.FINISHED
    finally:
        stop(process)


def test_workers_have_room_for_a_run():
    run_memory = int(config_map()["AICENTER_RUN_MEMORY_MB"])
    run_disk = int(config_map()["AICENTER_RUN_DISK_MB"])
    environments = int(config_map()["AICENTER_ENVIRONMENTS_MAX_BYTES"]) / 2**20
    for deployment, pod, container in workers().values():
        limit = mebibytes(container["resources"]["limits"]["memory"])
        assert limit >= run_memory + 512, deployment["metadata"]["name"]  # the worker's own
        (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
        assert mebibytes(data["emptyDir"]["sizeLimit"]) >= run_disk + environments
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[env_value(container, "AICENTER_DATA_DIR")] == "data"


def test_sandboxed_processes_get_what_bubblewrap_needs():
    for workload, _, container in containers():
        args = container["args"]
        sandboxed = queue_of(container) is not None or "skillhost" in args
        context = container.get("securityContext", {})
        if sandboxed:  # root for a uid per run; privileged for namespaces, /proc, cgroups
            assert context.get("privileged") is True, workload["metadata"]["name"]
            assert context.get("runAsUser") == 0
        else:  # the web server and migrations run no package code: no privilege at all
            assert not context.get("privileged")
            assert context.get("allowPrivilegeEscalation") is False
            assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def test_gpu_processes_and_only_they_ask_for_a_gpu():
    for workload, pod, container in containers():
        args = container["args"]
        gpu = queue_of(container) == "gpu" or "--gpu" in args
        limits = container.get("resources", {}).get("limits", {})
        assert ("nvidia.com/gpu" in limits) == gpu, workload["metadata"]["name"]
        if gpu:
            assert pod.get("nodeSelector"), workload["metadata"]["name"]
            assert env_value(container, "AICENTER_CUDA_VISIBLE_DEVICES") == "0"


def test_each_queue_scales_on_its_rq_list():
    queues = {name: Queue.redis_queue_namespace_prefix + name for name in settings.RQ_QUEUES}
    running = {name: StartedJobRegistry.key_template.format(name) for name in settings.RQ_QUEUES}
    redis_url = urlsplit(secret_data("aicenter-secrets")["REDIS_URL"])
    scaled = {}
    for scaled_object in of_kind("ScaledObject"):
        spec = scaled_object["spec"]
        target = named("Deployment", spec["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], "KEDA owns a scaled Deployment's replicas"
        (container,) = target["spec"]["template"]["spec"]["containers"]
        queue = queue_of(container)
        assert queue in settings.RQ_QUEUES
        triggers = spec["triggers"]
        lists = {t["metadata"]["listName"] for t in triggers}
        # the queue's RQ list of waiting job ids, and its registry of started ones: its own
        assert queues[queue] in lists
        assert lists <= {queues[queue], running[queue]}
        for trigger in triggers:
            assert trigger["type"] == "redis"
            metadata = trigger["metadata"]
            assert set(metadata) <= KEDA_REDIS_PARAMETERS, set(metadata) - KEDA_REDIS_PARAMETERS
            assert metadata["address"] == redis_url.netloc.rsplit("@", 1)[-1]
            assert metadata["databaseIndex"] == (redis_url.path.strip("/") or "0")
            int(metadata["listLength"])
            auth = named("TriggerAuthentication", trigger["authenticationRef"]["name"])
            (password,) = auth["spec"]["secretTargetRef"]
            assert password["parameter"] == "password"
            assert secret_data(password["name"])[password["key"]] == redis_url.password
        modifiers = spec["advanced"]["scalingModifiers"]
        names = [trigger["name"] for trigger in triggers]
        assert len(set(names)) == len(names)
        assert set(re.findall(r"[A-Za-z_]\w*", modifiers["formula"])) <= set(names)
        assert float(modifiers["target"]) > 0
        scaled[queue] = spec
    assert set(scaled) == set(workers()), "every worker Deployment has its ScaledObject"
    # one pipelines worker always runs: RQ's scheduler and the sweep of lost runs live in it
    assert scaled["pipelines"]["minReplicaCount"] >= 1
