"""The site's URLs and one that fails, for the tests of the 500 page."""

from django.urls import path

from aicenter.urls import handler500, urlpatterns  # noqa: F401 - the same handler


def fails(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [*urlpatterns, path("fails/", fails)]
