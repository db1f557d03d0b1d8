"""Tokens made before tokens had names keep working after migration 0006, named by number."""

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from aicenter.services import api_token_user

BEFORE_NAMES = [("aicenter", "0005_project_keep_skill_inputs")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


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
    from aicenter.models import ApiToken

    names = list(ApiToken.objects.order_by("pk").values_list("name", flat=True))
    assert names == [f"token {made[0].pk}", f"token {made[1].pk}"]
    assert api_token_user("aic_first-old-token").username == "olga"
    assert ApiToken.objects.get(pk=made[1].pk).status == "active"
