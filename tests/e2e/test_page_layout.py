"""Layouts measured in Chromium at the widths people use: a 1024 px laptop window and a 390 px
phone. Nothing scrolls the page sideways, file browsers with a preview keep their buttons
inside, CSV previews keep their header's case and scroll inside their own box."""

import io

import pytest
from playwright.sync_api import expect

from datasets.services import dataset_create, dataset_files_upload
from packages.services import package_create
from pipelines.runner.run import run_pipeline
from pipelines.services import pipeline_run_create
from tests.conftest import upload
from tests.factories import package_zip

pytestmark = [pytest.mark.browser]

WIDE_CSV = ",".join(f"feature_{i}" for i in range(30)) + "\n" + ",".join("0.5" for _ in range(30))
TRAIN = """\
import os


class Main:
    def __init__(self):
        pass

    def train(self, data_directory):
        out = os.environ["artifacts_directory"]
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "confusion.csv"), "w") as f:
            f.write("vendor,ACME,Globex\\nACME,41,2\\nGlobex,3,37\\n")

    def evaluate(self, evaluation_directory):
        return 0.9

    def save(self):
        pass
"""
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def filled(alice, project, runs_stay_here):
    """A dataset with long names and CSVs, a package, and a finished run with artifacts."""
    dataset = dataset_create(project=project, user=alice, name="invoices")
    files = {
        "labels.csv": b"file,vendor,Amount_EUR\ninv-001.pdf,ACME,12.5\n",
        "wide.csv": WIDE_CSV.encode(),
        "a-rather-long-file-name-for-an-invoice-scan-2024-01.pdf": b"%PDF" + b"0" * 5000,
        "train/inv-002.pdf": b"%PDF" + b"1" * 9000,
    }
    dataset_files_upload(
        user=alice,
        dataset=dataset,
        files=[(p, io.BytesIO(content)) for p, content in files.items()],
    )
    package_create(
        project=project,
        user=alice,
        name="invoice_classifier",
        file=upload(content=package_zip(**{"train.py": TRAIN})),
    )
    run = pipeline_run_create(
        project=project,
        user=alice,
        type="train",
        package="invoice_classifier",
        version="1.0",
        dataset="invoices",
    )
    run_pipeline(run)
    return run


def _at(page, width, height=800):
    page.set_viewport_size({"width": width, "height": height})


def _page_overflow(page, url):
    """Open `url`, screenshot it, and say how many px it scrolls sideways (0: none)."""
    page.goto(url)
    page.wait_for_load_state("load")
    width = page.viewport_size["width"]
    slug = "".join(c if c.isalnum() else "-" for c in url.strip("/")) or "projects"
    page.screenshot(path=_shot(f"layout-{width}-{slug}"), full_page=True)
    return max(page.evaluate(OVERFLOW), 0)


def _no_page_scroll(page, url):
    overflow = _page_overflow(page, url)
    assert overflow == 0, f"{url} at {page.viewport_size['width']} px: {overflow} px too wide"


def _outside(page, container, selector):
    """The elements matching `selector` in `container` that are not fully visible in it (cut
    by its edge or scrolled out of its box)."""
    return page.evaluate(
        """([container, selector]) => {
            const box = document.querySelector(container).getBoundingClientRect();
            return [...document.querySelectorAll(container + ' ' + selector)]
              .filter(el => {
                const r = el.getBoundingClientRect();
                return r.left < box.left - 0.5 || r.right > box.right + 0.5
                    || r.right > window.innerWidth;
              })
              .map(el => el.getAttribute('aria-label') || el.textContent.trim());
        }""",
        [container, selector],
    )


def test_file_browsers_with_a_preview_keep_their_buttons_inside(alice_page, filled):
    page = alice_page
    _at(page, 1024)
    for url in (
        "/p/alpha/datasets/invoices/?file=labels.csv",
        "/p/alpha/packages/invoice_classifier/1.0/?file=train.py",
        f"/p/alpha/pipelines/{filled.pk}/artifacts/?file=confusion.csv",
    ):
        _no_page_scroll(page, url)
        assert page.locator("#preview").is_visible(), url
        assert _outside(page, ".file-tree", ".button") == [], url
        assert _outside(page, "#preview", ".preview-head .button") == [], url


def test_csv_previews_keep_their_header_and_scroll_in_their_own_box(alice_page, filled):
    page = alice_page
    _at(page, 1024)
    _no_page_scroll(page, "/p/alpha/datasets/invoices/?file=labels.csv")
    headers = page.locator("#preview th").all_inner_texts()
    assert headers == ["file", "vendor", "Amount_EUR"]
    _no_page_scroll(page, "/p/alpha/datasets/invoices/?file=wide.csv")
    scroll = page.locator("#preview .table-scroll")
    assert scroll.evaluate("el => el.scrollWidth > el.clientWidth")  # it scrolls, by itself
    preview = page.locator("#preview").bounding_box()
    assert preview["x"] + preview["width"] <= 1024


@pytest.mark.parametrize("width", [1024, 390])
def test_no_page_scrolls_sideways(alice_page, filled, width):
    page = alice_page
    _at(page, width)
    urls = [
        "/",
        "/p/alpha/",
        "/p/alpha/datasets/",
        "/p/alpha/datasets/invoices/",
        "/p/alpha/datasets/invoices/?file=wide.csv",
        "/p/alpha/packages/",
        "/p/alpha/packages/new/",
        "/p/alpha/packages/invoice_classifier/",
        "/p/alpha/packages/invoice_classifier/1.0/?file=train.py",
        "/p/alpha/pipelines/",
        "/p/alpha/pipelines/new/",
        "/p/alpha/pipelines/recurring/",
        f"/p/alpha/pipelines/{filled.pk}/",
        f"/p/alpha/pipelines/{filled.pk}/artifacts/?file=confusion.csv",
        "/p/alpha/members/",
    ]
    too_wide = {url: px for url in urls if (px := _page_overflow(page, url))}
    assert not too_wide, f"pages wider than {width} px (by px): {too_wide}"


def test_the_runs_list_fits_a_laptop_window(alice_page, filled):
    page = alice_page
    _at(page, 1024)
    _no_page_scroll(page, "/p/alpha/pipelines/")
    table = page.locator("#runs .table-scroll")
    assert table.evaluate("el => el.scrollWidth <= el.clientWidth"), "Score is scrolled away"
    expect(page.locator(".runs td", has_text="—").last).to_be_in_viewport()


def test_the_create_form_is_usable_on_a_phone(alice_page, filled):
    page = alice_page
    _at(page, 390, 844)
    _no_page_scroll(page, "/p/alpha/pipelines/new/")
    form = page.locator("#pipeline-form")
    for control in form.locator("select:visible, input:visible, button:visible").all():
        box = control.bounding_box()
        what = control.evaluate("el => el.outerHTML.slice(0, 120)")
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, what
        if control.evaluate("el => el.matches('select, input:not([type=checkbox])')"):
            assert box["width"] >= 120, what  # room to read what is chosen or typed
    page.screenshot(path=_shot("layout-390-pipeline-new"), full_page=True)
    _no_page_scroll(page, "/p/alpha/pipelines/")
    # the run's link and status are on screen, not pushed off to the right
    for cell in (page.locator(".runs a", has_text=f"#{filled.pk}"), page.locator(".runs .badge")):
        box = cell.first.bounding_box()
        assert box["x"] + box["width"] <= 390
    page.screenshot(path=_shot("layout-390-pipelines"), full_page=True)


def _shot(name):
    from django.conf import settings

    folder = settings.BASE_DIR / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"
