"""HTML and Markdown artifacts in Chromium, as the attack: the HTML report shows in its
sandboxed iframe, styled by its own inline CSS and with its inline image, while its script,
event handlers, fetch, stylesheet, sub-frame and form do nothing: no dialog opens, no request
reaches AI Center (the policy refuses the stylesheet's and the image's), the page around it
is untouched, and the frame's origin is opaque. The Markdown notes render as HTML without
their script. Screenshots (85-87)."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.conftest import classifier_and_invoices
from tests.pipelines.reports import report_run

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("runs_stay_here")]

SHOTS = settings.BASE_DIR / "test-artifacts" / "screenshots"


def shoot(page, name, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.wait_for_timeout(200)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}-{width}.png", full_page=True)


def test_an_html_report_renders_and_runs_nothing(alice_page, alice, project):
    page = alice_page
    classifier_and_invoices(project, alice)
    run = report_run(project, alice)
    dialogs, answered, refused, errors = [], [], [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    # Chromium reports a request the policy blocks as failed, never answered
    page.on("response", lambda response: answered.append(response.url))
    page.on("requestfailed", lambda request: refused.append((request.url, request.failure)))
    page.on("console", lambda message: errors.append(message.text))

    page.goto(f"/p/alpha/pipelines/{run.pk}/artifacts/?file=report.html")
    title = page.title()
    report = page.frame_locator("iframe.preview-frame")
    expect(report.locator("h1")).to_have_text("Model report")
    expect(report.locator("#accuracy")).to_have_text("accuracy 0.93")
    # its own inline style applies, its inline image loads
    expect(report.locator("h1")).to_have_css("color", "rgb(200, 0, 0)")
    assert report.locator("#dot").evaluate("img => img.complete && img.naturalWidth") == 1
    report.locator("#send").click()  # a sandbox without allow-forms: the form goes nowhere
    page.wait_for_timeout(500)  # time for anything that would run to have run

    assert dialogs == []
    assert [url for url in answered if "pwned" in url] == []
    blocked = {url.rsplit("/", 1)[1]: why for url, why in refused if "pwned" in url}
    assert set(blocked) >= {"pwned-by-stylesheet", "pwned-by-image"}, refused
    assert set(blocked.values()) == {"csp"}, blocked
    assert page.title() == title
    frame = next(f for f in page.frames if f.url.endswith("report.html?inline=1"))
    assert frame.evaluate("() => document.body.dataset.ran") is None  # the script never ran
    assert frame.evaluate("() => window.origin") == "null"  # not AI Center's origin
    reach = "() => { try { return parent.document.title; } catch (e) { return e.name; } }"
    assert frame.evaluate(reach) == "SecurityError"
    assert any("Content Security Policy" in text or "sandboxed" in text for text in errors)
    shoot(page, "85-html-report", 1280)
    # the report takes the frame's width, at a phone's too
    page.set_viewport_size({"width": 390, "height": 900})
    frame_width = page.locator("iframe.preview-frame").bounding_box()["width"]
    expect(report.locator("h1")).to_have_text("Model report")
    assert report.locator("h1").bounding_box()["width"] > frame_width * 0.8
    shoot(page, "86-html-report", 390)


def test_markdown_notes_render_as_html(alice_page, alice, project):
    page = alice_page
    classifier_and_invoices(project, alice)
    run = report_run(project, alice)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"/p/alpha/pipelines/{run.pk}/artifacts/?file=notes.md")
    notes = page.locator(".preview-markdown")
    expect(notes.locator("h1")).to_have_text("Results")
    expect(notes.locator("td strong")).to_have_text("0.93")
    expect(notes.get_by_role("link", name="the docs")).to_have_attribute(
        "href", "https://example.com/docs"
    )
    expect(notes.locator("script, img[onerror]")).to_have_count(0)
    page.wait_for_timeout(300)
    assert dialogs == []
    shoot(page, "87-markdown-notes", 1280)
