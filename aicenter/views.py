from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render, resolve_url

from core.members import membership_remove, membership_set
from core.models import Membership
from core.pages import form_errors
from core.services import (
    can_create_projects,
    project_create,
    project_get_for_user,
    project_list_for_user,
    project_settings_update,
)
from datasets.selectors import dataset_list
from packages.selectors import package_list, with_latest_number
from pipelines.run_pages import pipeline_run_list

RECENT = 5  # rows in each of the Overview's cards


class LoginView(auth_views.LoginView):
    """Logged in, a person lands where they work: the `default` project if theirs, else their
    first one (the projects list only if they have none). A page that asked for the login
    (`?next=`) wins, except the projects list itself: it is where opening the site's address
    sends everyone, which says nothing of where they want to be."""

    def get_success_url(self):
        wanted = self.get_redirect_url()
        if wanted and wanted != resolve_url("project-list"):
            return wanted
        projects = project_list_for_user(self.request.user)
        project = projects.filter(slug="default").first() or projects.first()
        if project is None:
            return resolve_url("project-list")
        return resolve_url("project-home", project=project.slug)


@login_required
def project_list(request):
    errors, values = {}, {}
    if request.method == "POST":
        values = request.POST
        try:
            project = project_create(
                user=request.user,
                name=request.POST.get("name", ""),
                description=request.POST.get("description", ""),
            )
            return redirect("project-home", project=project.slug)
        except ValidationError as error:
            errors = form_errors(error)
    projects = project_list_for_user(request.user)
    return render(
        request,
        "projects/list.html",
        {
            "projects": projects,
            "errors": errors,
            "values": values,
            "can_create": can_create_projects(request.user),
        },
        status=400 if errors else 200,
    )


@login_required
def project_home(request, project):
    """The Overview: counts, and the newest datasets, packages and runs (a query each)."""
    project = project_get_for_user(user=request.user, slug=project)
    newest = ("-created_at", "-id")
    packages = package_list(project=project).order_by(*newest)[:RECENT]
    return render(
        request,
        "projects/home.html",
        {
            "project": project,
            "datasets": dataset_list(project=project).order_by(*newest)[:RECENT],
            "packages": with_latest_number(packages),
            "runs": pipeline_run_list(project=project)[:RECENT],
            "dataset_count": project.datasets.count(),
            "package_count": project.packages.count(),
            "run_count": project.pipeline_runs.count(),
        },
    )


@login_required
def project_members(request, project):
    """Members and their roles; Project admins add, change (a row's role) and remove them."""
    project = project_get_for_user(user=request.user, slug=project)
    errors, values = {}, {}
    if request.method == "POST":
        username = request.POST.get("remove") or request.POST.get("username", "").strip()
        try:
            if request.POST.get("remove"):
                membership_remove(user=request.user, project=project, username=username)
            else:
                role = request.POST.get("role", "")
                membership_set(user=request.user, project=project, username=username, role=role)
            return redirect("project-members", project=project.slug)
        except ValidationError as error:
            errors, values = form_errors(error), request.POST
            if request.POST.get("row"):  # a row's buttons: said above the table
                errors = {"general": [m for ms in errors.values() for m in ms]}
    members = project.memberships.select_related("user").order_by("user__username")
    context = {"project": project, "members": members, "roles": Membership.ROLES}
    context |= {"errors": errors, "values": values}
    return render(request, "projects/members.html", context, status=400 if errors else 200)


@login_required
def project_settings(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    if request.method == "POST":
        # each card of the page posts its own setting (a missing checkbox is off)
        setting = (
            "keep_skill_inputs" if request.POST.get("section") == "skills" else "allow_network"
        )
        project_settings_update(
            user=request.user, project=project, **{setting: request.POST.get(setting) == "on"}
        )
        return redirect("project-settings", project=project.slug)
    return render(request, "projects/settings.html", {"project": project})
