"""Migrations that move data keep it: run against a database migrated to the state before them."""

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from core.tokens import api_token_in_use

BEFORE_NAMES = [("aicenter", "0005_project_keep_skill_inputs")]  # API tokens without names
BEFORE_LINEAGE = [
    ("aicenter", "0004_project_allow_network"),
    ("packages", "0003_packageversion_tombstone"),
    ("pipelines", "0005_pipelinerun_timezone"),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _package_version(apps):
    """A project with a package and its version 1.0, in the models of `apps`."""
    project = apps.get_model("aicenter", "Project").objects.create(name="Old", slug="old")
    package = apps.get_model("packages", "Package").objects.create(
        project=project, name="clf", language="3.11"
    )
    version = apps.get_model("packages", "PackageVersion").objects.create(
        package=package, major=1, minor=0
    )
    return project, package, version


@pytest.mark.django_db(transaction=True)
def test_lineage_moves_to_the_version_and_a_deleted_runs_number_is_kept():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_LINEAGE)
    try:
        project, package, parent = _package_version(old)
        Version = old.get_model("packages", "PackageVersion")
        run = old.get_model("pipelines", "PipelineRun").objects.create(
            project=project, package=package, version=parent
        )
        trained = Version.objects.create(
            package=package, major=1, minor=1, source="trained", parent=parent,
            pipeline_run=run, trained_by_run=run.pk, trained_on="invoices",
        )  # fmt: skip
        run.output_version = trained
        run.save()
        orphan = Version.objects.create(  # its run was deleted: only the number was left
            package=package, major=1, minor=2, source="trained", parent=parent,
            pipeline_run=None, trained_by_run=run.pk + 1000,
        )  # fmt: skip
    finally:
        new = _migrate(latest)
    Version = new.get_model("packages", "PackageVersion")
    assert Version.objects.get(pk=trained.pk).pipeline_run_id == run.pk
    assert Version.objects.get(pk=trained.pk).trained_on == "invoices"
    assert Version.objects.get(pk=orphan.pk).pipeline_run_id == run.pk + 1000
    Run = new.get_model("pipelines", "PipelineRun")
    assert Run.objects.get(pk=run.pk).trained_version.pk == trained.pk


@pytest.mark.django_db(transaction=True)
def test_old_tokens_get_a_name_and_keep_working():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_NAMES)
    try:
        user = old.get_model("auth", "User").objects.create(username="olga", is_active=True)
        Token = old.get_model("aicenter", "ApiToken")
        made = [
            Token.objects.create(
                user=user, digest=hashlib.sha256(secret.encode()).hexdigest(), prefix=secret[:8]
            )
            for secret in ("aic_first-old-token", "aic_second-old-token")
        ]
    finally:
        _migrate(latest)
    from core.models import ApiToken

    names = list(ApiToken.objects.order_by("pk").values_list("name", flat=True))
    assert names == [f"token {made[0].pk}", f"token {made[1].pk}"]
    assert api_token_in_use("aic_first-old-token").user.username == "olga"
    assert ApiToken.objects.get(pk=made[1].pk).status == "active"


BEFORE_METRIC_KEYS = [("pipelines", "0011_fewer_indexes")]  # a metric's row without its run's


@pytest.mark.django_db(transaction=True)
def test_a_metric_logged_before_gets_its_runs_keys_and_sorts_the_list():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_METRIC_KEYS)
    try:
        project, package, version = _package_version(old)
        Run = old.get_model("pipelines", "PipelineRun")
        runs = [
            Run.objects.create(project=project, package=package, version=version) for _ in range(3)
        ]
        Series = old.get_model("pipelines", "MetricSeries")
        for run, last in zip(runs, [0.5, None, 0.25], strict=True):
            Series.objects.create(run=run, name="loss", count=1, last=last)
    finally:
        _migrate(latest)
    from core.models import Project
    from pipelines.models import MetricSeries
    from pipelines.run_pages import pipeline_run_page

    copied = MetricSeries.objects.order_by("run_id").values_list("project_id", "run_created_at")
    assert list(copied) == [(project.pk, run.created_at) for run in runs]
    page = pipeline_run_page(
        project=Project.objects.get(pk=project.pk), metric="loss", sort="metric"
    )
    assert [run.pk for run in page.runs] == [runs[2].pk, runs[0].pk, runs[1].pk]


BEFORE_HASHED_KEYS = [("skills", "0002_minute_logged")]  # skill keys in clear


@pytest.mark.django_db(transaction=True)
def test_skill_keys_in_clear_are_hashed_and_keep_working():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_HASHED_KEYS)
    keys = ["sk-an-old-key-of-the-first-skill", "sk-an-old-key-of-the-second-one"]
    try:
        project, package, version = _package_version(old)
        Skill = old.get_model("skills", "Skill")
        made = [
            Skill.objects.create(
                project=project, name=f"s{n}", package=package, version=version, api_key=key
            )
            for n, key in enumerate(keys)
        ]
    finally:
        _migrate(latest)
    from skills.models import Skill

    for skill, key in zip(made, keys, strict=True):
        row = Skill.objects.get(pk=skill.pk)
        assert row.opens_with(key) and row.api_key_prefix == key[:8]
        assert key not in str(Skill.objects.filter(pk=skill.pk).values().get())
    response = Client().post(
        "/api/v1/projects/old/skills/s0/predict", "hi", content_type="application/json",
        headers={"X-API-Key": keys[0]},
    )  # fmt: skip
    assert response.status_code == 503  # let in by its old key; no replica is up
