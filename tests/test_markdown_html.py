"""Markdown from users and packages, as a page shows it: formatting kept, script gone."""

import pytest

from core.markdown_html import render_markdown


def test_formatting_and_tables_are_kept():
    html = render_markdown("# Notes\n\n**bold** and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h1>Notes</h1>" in html and "<strong>bold</strong>" in html
    assert "<code>code</code>" in html and "<td>1</td>" in html


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">click</a>',
        '<iframe src="https://example.com"></iframe>',
        '<div style="background:url(javascript:alert(1))">x</div>',
        "<svg onload=alert(1)>",
    ],
)
def test_the_attack_renders_no_script(attack):
    html = render_markdown(attack).lower()
    for sign in ("<script", "onerror", "onload", 'href="javascript', "<iframe", "style=", "<svg"):
        assert sign not in html


def test_links_open_without_handing_over_the_page():
    html = render_markdown("[docs](https://example.com)")
    assert 'href="https://example.com"' in html and "noopener" in html


def test_nothing_renders_as_nothing():
    assert render_markdown("") == "" and render_markdown(None) == ""
