"""Every error under /api/ is JSON, {"detail": …}, as clients parse it.

The API's own operations answer JSON already; what doesn't is answered before them or beside
them: Django's 404 page for a path no operation has, django-ninja's bare 405 for a method an
operation lacks, Django's 400 for a refused request. A client that parses every error body as
JSON would choke on those HTML pages.
"""

from django.http import JsonResponse

API_PREFIX = "/api/"
DOCS = "/api/v1/docs"


def _detail(request, response) -> str:
    if response.status_code == 404:
        return f"No API endpoint at {request.path}: see {DOCS} for the ones there are."
    if response.status_code == 405:
        allowed = ", ".join(sorted(m.strip() for m in response.get("Allow", "").split(",") if m))
        return f"{request.method} is not allowed on {request.path}" + (
            f"; it answers {allowed}." if allowed else "."
        )
    return response.reason_phrase or f"HTTP {response.status_code}"


class ApiErrorsAsJson:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(API_PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
            or getattr(response, "streaming", False)
        ):
            return response
        answer = JsonResponse({"detail": _detail(request, response)}, status=response.status_code)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                answer[header] = response[header]
        return answer
