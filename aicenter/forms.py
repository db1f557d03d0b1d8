"""Small helpers shared by the apps' page views."""

from django.core.exceptions import ValidationError


def form_errors(error: ValidationError) -> dict[str, list[str]]:
    """Field → messages; messages not tied to a field go under 'general'."""
    if hasattr(error, "error_dict"):
        return {field: list(messages) for field, messages in error.message_dict.items()}
    return {"general": list(error.messages)}


def truthy(value) -> bool:
    return str(value).lower() in ("1", "true", "on", "yes")


def done(request, url):
    """After a successful POST: a redirect, or for htmx a client-side one (full page load)."""
    from django.shortcuts import redirect
    from django_htmx.http import HttpResponseClientRedirect

    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def folder_breadcrumbs(folder: str) -> list[dict[str, str]]:
    """'a/b' → [{name: a, path: a}, {name: b, path: a/b}], for the file browsers' path bar."""
    parts = folder.split("/") if folder else []
    return [{"name": part, "path": "/".join(parts[: i + 1])} for i, part in enumerate(parts)]


def page_of(request, items, per_page=100):
    from django.core.paginator import Paginator

    return Paginator(items, per_page).get_page(request.GET.get("page"))
