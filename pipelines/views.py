from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from aicenter.services import project_get_for_user


@login_required
def pipeline_list(request, project):
    project = project_get_for_user(user=request.user, slug=project)
    return render(request, "pipelines/list.html", {"project": project})
