"""HTML and Markdown artifacts through the test client, as the attack: the HTML report is put
in a sandboxed iframe and served with a policy under which nothing in it runs or loads; the
Markdown is rendered with its raw HTML and javascript: links removed. What a browser then does
with them is in tests/e2e/test_report_artifacts_pages.py."""

import io
import re

import pytest

from datasets.models import Dataset
from datasets.services import dataset_file_put
from tests.pipelines.reports import report_run

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

POLICY = {
    "sandbox",
    "default-src 'none'",
    "img-src data:",
    "style-src 'unsafe-inline'",
    "frame-ancestors 'self'",
}


def _policy(response):
    return {part.strip() for part in response["Content-Security-Policy"].split(";")}


def test_an_html_report_is_framed_sandboxed_from_its_own_address(bobs, project, bob):
    run = report_run(project, bob)
    base = f"/p/alpha/pipelines/{run.pk}/artifacts/"
    page = bobs.get(base, {"file": "report.html"}).content.decode()
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    assert 'sandbox=""' in frame
    assert f'src="{base}files/report.html?inline=1"' in frame
    assert "alert(" not in page  # the report's text is not in the page: only its address

    inline = bobs.get(f"{base}files/report.html", {"inline": "1"})
    assert inline.status_code == 200
    assert inline["Content-Type"].startswith("text/html")
    assert _policy(inline) == POLICY
    assert inline["X-Frame-Options"] == "SAMEORIGIN"
    assert inline["X-Content-Type-Options"] == "nosniff"
    assert "attachment" not in inline.get("Content-Disposition", "")
    # without ?inline, a download as before
    download = bobs.get(f"{base}files/report.html")
    assert download["Content-Disposition"].startswith("attachment")
    # the pages around it keep their own policy: no page of the site may be framed
    assert "frame-ancestors 'none'" in _policy(bobs.get(base))


def test_markdown_notes_are_rendered_without_their_scripts(bobs, project, bob):
    run = report_run(project, bob)
    page = bobs.get(f"/p/alpha/pipelines/{run.pk}/artifacts/", {"file": "notes.md"})
    preview = page.content.decode().split('id="preview"')[1]
    assert "<h1>Results</h1>" in preview
    assert "<th>metric</th>" in preview and "<strong>0.93</strong>" in preview
    assert '<a href="https://example.com/docs" rel="noopener noreferrer nofollow">' in preview
    for attack in ("<script", "onerror", 'href="javascript:', "markdown script"):
        assert attack not in preview, attack
    assert "[a link](javascript:alert(1))" in preview  # refused as a link: left as text


def test_a_dataset_file_is_served_inline_under_the_same_policy(bobs, project, bob):
    dataset = Dataset.objects.get(name="invoices")
    dataset_file_put(user=bob, dataset=dataset, path="eda.html", fileobj=io.BytesIO(b"<b>x</b>"))
    page = bobs.get("/p/alpha/datasets/invoices/", {"file": "eda.html"}).content.decode()
    assert 'sandbox="" src="/p/alpha/datasets/invoices/files/eda.html?inline=1"' in page
    inline = bobs.get("/p/alpha/datasets/invoices/files/eda.html", {"inline": "1"})
    assert _policy(inline) == POLICY
