"""The pieces of the security settings that are code: the Content-Security-Policy middleware,
and how login throttling (django-axes) finds the client and answers a locked-out login."""

import math

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render

# django-rq's queue pages (staff only) initialise their bulk actions with inline scripts.
_INLINE_CODE_PREFIXES = ("/admin/rq/",)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware with settings.CONTENT_SECURITY_POLICY, relaxed to allow inline
    script and style on the third-party pages listed above, and nowhere else."""

    def get_policy_parts(self, request, response, report_only=False):
        parts = super().get_policy_parts(request, response, report_only)
        if request.path_info.startswith(_INLINE_CODE_PREFIXES) and parts.update is None:
            parts.update = {"script-src": [UNSAFE_INLINE], "style-src": [UNSAFE_INLINE]}
        return parts


def client_ip(request):
    """The address failed logins are counted for. Behind the TLS proxy every request comes
    from the proxy: the client is the last X-Forwarded-For entry, the one the proxy added
    (earlier ones come from the client and can be forged)."""
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")


def lockout_minutes():
    return max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def login_locked_out(request, response=None, credentials=None):
    """The login page again, saying why the login was refused, instead of a bare 429."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "locked_out_minutes": lockout_minutes(),
    }
    return render(request, "registration/login.html", context, status=429)
