from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from aicenter.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user '{username}'.")
        self.stderr.write(f"API token for {username} (send it as 'Authorization: Bearer ...'):")
        self.stdout.write(api_token_create(user=user))
