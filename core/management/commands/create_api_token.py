from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.models import ApiToken
from core.tokens import api_token_create

DEFAULT_NAME = "command line"


def _free_name(user, name: str) -> str:
    """The default name, numbered when taken ("command line 2"): the command is run again and
    again by scripts, which should not have to name each token."""
    taken = set(
        ApiToken.objects.filter(
            user=user, revoked_at__isnull=True, name__startswith=name
        ).values_list("name", flat=True)
    )
    number = 1
    while (candidate := name if number == 1 else f"{name} {number}") in taken:
        number += 1
    return candidate


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--name",
            help=f"what the token is for, as its list shows it (default '{DEFAULT_NAME}', "
            "numbered if you already have one)",
        )
        parser.add_argument(
            "--expires",
            metavar="DATE",
            help="the last day it works (2027-01-31), or a number of days; default: never",
        )

    def handle(self, *args, username, name=None, expires=None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user '{username}'.")
        if expires is not None and expires.isdigit():
            expires = int(expires)
        try:
            token = api_token_create(
                user=user,
                name=name if name is not None else _free_name(user, DEFAULT_NAME),
                expires_at=expires,
                from_command_line=True,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stderr.write(
            f"API token '{token.name}' for {username} (send it as 'Authorization: Bearer ...'):"
        )
        self.stdout.write(token.token)
