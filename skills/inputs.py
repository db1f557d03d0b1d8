"""A skill call's input as its replica receives it, from the request of the API or of the
skill page's Try it."""

import json

from django.conf import settings
from django.http import JsonResponse
from django.template.defaultfilters import filesizeformat


def read_input(request, skill):
    """The call's input as the replica receives it: the body; for input type `files`, the
    uploaded files (multipart) as a JSON list of their sizes, a newline, their bytes."""
    most = settings.SKILL_MOST_INPUT_BYTES
    too_large = JsonResponse(
        {"detail": f"The input is larger than {filesizeformat(most)}."}, status=413
    )
    try:
        size = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = 0  # Django reads no body then
    if size > most:
        return too_large
    if skill.package.input_type == "files" and request.content_type == "multipart/form-data":
        files = [f.read() for name in request.FILES for f in request.FILES.getlist(name)]
        return json.dumps([len(f) for f in files]).encode() + b"\n" + b"".join(files)
    body = request.read(most + 1)
    if len(body) > most:
        return too_large
    if skill.package.input_type == "files":
        return json.dumps([len(body)]).encode() + b"\n" + body
    return body
