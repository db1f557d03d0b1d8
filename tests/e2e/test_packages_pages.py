import pytest
from playwright.sync_api import expect

from packages.models import Package
from tests.conftest import stored_files
from tests.factories import TRAIN_PY, package_zip

pytestmark = [pytest.mark.browser]

TRAIN_PY_WITHOUT_SAVE = TRAIN_PY.split("    def save(self):")[0]


def test_it_creates_a_package_from_a_chosen_zip(alice_page, tmp_path):
    page = alice_page
    archive = tmp_path / "invoice_classifier.zip"
    archive.write_bytes(package_zip(root="invoice_classifier"))

    page.goto("/p/alpha/packages/")
    expect(page.get_by_role("heading", name="No ML packages yet")).to_be_visible()
    page.get_by_role("link", name="Create new package").first.click()
    expect(page).to_have_url("/p/alpha/packages/new/")

    page.locator("input[name=file]").set_input_files(archive)
    expect(page.locator(".dropzone-text")).to_have_text("invoice_classifier.zip")
    page.get_by_label("Name").fill("invoice_classifier")
    page.get_by_label("Description", exact=True).fill("Sorts invoices by vendor")
    page.get_by_label("Enable training").check()
    page.get_by_role("button", name="Create package").click()

    expect(page).to_have_url("/p/alpha/packages/invoice_classifier/")
    expect(page.get_by_role("heading", level=1)).to_have_text("ML Packages / invoice_classifier")
    expect(page.get_by_text("Sorts invoices by vendor")).to_be_visible()
    row = page.locator("table tbody tr")
    expect(row).to_have_count(1)
    expect(row.get_by_role("link", name="1.0", exact=True)).to_be_visible()
    expect(row).to_contain_text("uploaded by alice")

    row.get_by_role("link", name="1.0", exact=True).click()
    expect(page).to_have_url("/p/alpha/packages/invoice_classifier/1.0/")
    page.get_by_role("link", name="train.py", exact=True).click()
    expect(page.locator("#preview pre")).to_contain_text("def save(self):")
    with page.expect_download() as download_info:
        page.locator("#preview").get_by_role("link", name="Download").click()
    assert open(download_info.value.path(), "rb").read() == TRAIN_PY.encode()


def test_it_shows_what_is_missing_and_creates_nothing(alice_page, tmp_path):
    page = alice_page
    archive = tmp_path / "broken.zip"
    archive.write_bytes(package_zip(**{"train.py": TRAIN_PY_WITHOUT_SAVE}))

    page.goto("/p/alpha/packages/new/")
    page.locator("input[name=file]").set_input_files(archive)
    page.get_by_label("Name").fill("broken")
    page.get_by_label("Enable training").check()
    page.get_by_role("button", name="Create package").click()

    expect(page.locator(".field-errors")).to_have_text("train.py: class Main has no method save")
    expect(page.get_by_role("alert")).to_contain_text("The package was not created")
    expect(page).to_have_url("/p/alpha/packages/new/")
    # What the user typed is kept for the next try.
    expect(page.get_by_label("Name")).to_have_value("broken")
    expect(page.get_by_label("Enable training")).to_be_checked()
    assert not Package.objects.exists()
    assert stored_files() == []


def test_the_name_comes_from_the_zip_and_the_zip_stays_chosen_after_an_error(alice_page, tmp_path):
    page = alice_page
    taken = tmp_path / "invoice-model v2.zip"
    taken.write_bytes(package_zip())
    page.goto("/p/alpha/packages/new/")
    page.locator("input[name=file]").set_input_files(taken)
    expect(page.get_by_label("Name")).to_have_value("invoice_model_v2")
    page.get_by_role("button", name="Create package").click()
    expect(page).to_have_url("/p/alpha/packages/invoice_model_v2/")

    page.goto("/p/alpha/packages/new/")
    page.locator("input[name=file]").set_input_files(taken)
    page.get_by_role("button", name="Create package").click()
    expect(page.locator(".field-errors")).to_contain_text("already exists")
    # the form was swapped in place, and the chosen zip is still there
    expect(page.locator(".dropzone-text")).to_have_text("invoice-model v2.zip")
    assert page.locator("input[name=file]").evaluate("input => input.files.length") == 1
    # a name the user typed is theirs: choosing another zip doesn't replace it
    page.get_by_label("Name").fill("invoice_model_v3")
    page.locator("input[name=file]").set_input_files(taken)
    expect(page.get_by_label("Name")).to_have_value("invoice_model_v3")
    page.get_by_role("button", name="Create package").click()
    expect(page).to_have_url("/p/alpha/packages/invoice_model_v3/")
    assert Package.objects.count() == 2
