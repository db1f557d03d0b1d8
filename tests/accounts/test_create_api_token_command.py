"""manage.py create_api_token USERNAME [--name] [--expires]: the token alone on the last line."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from core.models import ApiToken, Event


def run(*args):
    out = StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def works(token):
    client = Client(headers={"Authorization": f"Bearer {token}"})
    return client.get("/api/v1/projects").status_code == 200


def test_it_prints_a_working_token_named_command_line_each_time(alice):
    first, second = run("alice"), run("alice")
    assert works(first) and works(second)
    names = set(ApiToken.objects.filter(user=alice).values_list("name", flat=True))
    assert names == {"command line", "command line 2"}
    event = Event.objects.filter(category="token", action="created").first()
    assert event.actor is None and event.actor_name == "system"
    assert event.data["user"] == "alice"


def test_it_takes_a_name_and_an_expiry(alice):
    token = run("alice", "--name", "nightly job", "--expires", "30")
    assert works(token)
    row = ApiToken.objects.get(name="nightly job")
    assert row.expires_at is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["nobody"], "There is no user 'nobody'"),
        (["alice", "--name", ""], "A name is required"),
        (["alice", "--expires", "2001-01-01"], "must be in the future"),
    ],
)
def test_it_refuses_bad_input(alice, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not ApiToken.objects.exists()
