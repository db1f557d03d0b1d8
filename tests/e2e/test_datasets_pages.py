import pytest
from playwright.sync_api import expect

from core.models import Project
from datasets.services import dataset_create
from tests.factories import make_zip

pytestmark = [pytest.mark.browser]

RESUME = "Résumé des données: 10 lignes, 3 colonnes.\n".encode()
README = b"scanned invoices\n"
TABLE = b"a,b,c\n" * 100


def size(content):
    """As the pages show sizes (Django's filesizeformat)."""
    return f"{len(content)}\xa0bytes"


def row(page, name):
    """The file browser's row for the file or folder `name`."""
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True))


def files_in(row):
    return row.get_by_role("cell").nth(1)


def current_folder(page):
    return page.get_by_role("navigation", name="Folder").locator("[aria-current=page]")


def test_it_uploads_a_folder_browses_it_and_downloads_a_file(alice_page, tmp_path):
    page = alice_page
    scans = tmp_path / "scans"
    (scans / "données").mkdir(parents=True)
    (scans / "readme.txt").write_bytes(README)
    (scans / "données" / "résumé.txt").write_bytes(RESUME)
    (scans / "données" / "table.csv").write_bytes(TABLE)

    page.goto("/p/alpha/datasets/")
    expect(page.get_by_role("heading", name="No datasets yet")).to_be_visible()
    page.get_by_label("Name").fill("invoices")
    page.get_by_label("Description").fill("Scanned invoices")
    page.get_by_role("button", name="Create dataset").click()

    expect(page).to_have_url("/p/alpha/datasets/invoices/")
    expect(page.get_by_text("This folder is empty.")).to_be_visible()

    page.locator("input[webkitdirectory]").set_input_files(scans)
    page.get_by_role("button", name="Upload", exact=True).click()

    expect(files_in(row(page, "scans"))).to_have_text("3")
    expect(page.locator(".crumb-summary")).to_have_text(
        f"3 files · {size(README + RESUME + TABLE)}"
    )

    row(page, "scans").get_by_role("link").click()
    expect(current_folder(page)).to_have_text("scans")
    expect(row(page, "readme.txt")).to_contain_text(size(README))
    row(page, "données").get_by_role("link").click()

    expect(current_folder(page)).to_have_text("données")
    expect(row(page, "résumé.txt")).to_contain_text(size(RESUME))
    expect(row(page, "table.csv")).to_contain_text(size(TABLE))

    with page.expect_download() as download_info:
        row(page, "résumé.txt").get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "résumé.txt"
    assert open(download.path(), "rb").read() == RESUME

    folders = page.get_by_role("navigation", name="Folder")
    expect(folders.get_by_role("link")).to_have_text(["invoices", "scans"])
    folders.get_by_role("link", name="scans").click()
    expect(current_folder(page)).to_have_text("scans")
    expect(row(page, "données")).to_be_visible()
    folders.get_by_role("link", name="invoices").click()
    expect(current_folder(page)).to_have_text("invoices")
    expect(row(page, "scans")).to_be_visible()


def test_it_unpacks_an_uploaded_zip(alice_page, alice, tmp_path):
    page = alice_page
    dataset_create(project=Project.objects.get(slug="alpha"), user=alice, name="receipts")
    archive = tmp_path / "receipts.zip"
    archive.write_bytes(
        make_zip({"labels.csv": "file,label\na.png,ok\n", "images/a.png": b"\x89PNG fake"})
    )

    page.goto("/p/alpha/datasets/receipts/")
    page.locator("input[name=zip]").set_input_files(archive)
    page.get_by_role("button", name="Upload and unpack").click()

    expect(files_in(row(page, "images"))).to_have_text("1")
    expect(row(page, "labels.csv")).to_contain_text("20\xa0bytes")
    row(page, "images").get_by_role("link").click()
    expect(row(page, "a.png")).to_contain_text("9\xa0bytes")
