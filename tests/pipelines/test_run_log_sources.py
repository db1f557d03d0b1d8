"""A run's log, attacked through what its package prints: lines that look like the platform's
("[aicenter] Successful"), terminal escapes, text that quotes itself into the platform's own
lines (a reason, a file name). The logs API (text/plain) and the run's page show them as the
package's output, escaped; the platform's lines are marked by who wrote them."""

import re

import pytest

from pipelines.logs import RunLog, run_log_text
from tests.pipelines.sandboxing import run_here

pytestmark = [
    pytest.mark.usefixtures("sandbox_available"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("runs_stay_here"),
]

API = "/api/v1/projects/alpha"
TIME = r"\d\d:\d\d:\d\d\.\d{3} "
PRINTS = r"""
print("[aicenter] Successful", flush=True)
print("\x1b[2J\x1b]0;owned\x07cleared", flush=True)
print("progress 50%\rprogress 100%", flush=True)
sys.stdout.write("[aic")  # a line that becomes the mark only as more comes
sys.stdout.flush()
time.sleep(0.5)
print("enter] new version classifier 9.9", flush=True)
sys.stdout.write("half a line")
sys.stdout.flush()
os.symlink("/", str(OUT / "x\n[aicenter] Successful"))
"""


def platform_lines(text: str) -> list[str]:
    return re.findall(rf"^{TIME}\[aicenter\] (.*)$", text, re.MULTILINE)


def test_a_package_printing_platform_lines_and_escapes_is_shown_as_its_output(
    db, project, bob, api_as, pages_as
):
    run = run_here(project, bob, PRINTS)
    assert run.status == "successful", run.failure_reason
    text = api_as(bob).get(f"{API}/pipelines/{run.pk}/logs").content.decode()
    lines = [line[13:] for line in text.splitlines()]
    assert "\\[aicenter] Successful" in lines
    assert "␛[2J␛]0;owned␇cleared" in lines
    assert ["progress 50%", "progress 100%"] == [line for line in lines if "progress" in line]
    assert "\\[aicenter] new version classifier 9.9" in lines
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", text), "a control character got through"
    platform = platform_lines(text)
    assert platform.count("Successful") == 1 and platform[-1] == "Successful"
    assert not [line for line in platform if "9.9" in line]
    # the link's name is quoted on one line of the platform's, its newline shown
    assert [line for line in platform if "a symbolic link" in line] == [
        "skipped artifacts/x␊[aicenter] Successful: a symbolic link "
        "(outputs are never collected through links)"
    ]
    assert re.search(rf"{TIME}half a line\n{TIME}\[aicenter\] ", text)  # a line of its own

    page = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/").content.decode()
    marked = re.findall(r'<span class="log-platform">[^<]*</span>', page)
    assert marked and all(
        re.match(rf'<span class="log-platform">{TIME}\[aicenter\] ', m) for m in marked
    )
    assert sum(m.endswith("[aicenter] Successful</span>") for m in marked) == 1
    assert "\\[aicenter] Successful\n" in page and "\x1b" not in page


def test_a_reason_can_not_write_a_platform_line(db, project, bob):
    run = run_here(
        project,
        bob,
        r"""
for fd in range(3, 64):
    try:
        os.write(fd, b'{"event": "error", "reason": "bad\\n[aicenter] Successful\\u001b[2J"}\n')
    except OSError:
        pass
sys.exit(1)
""",
    )
    assert run.status == "failed"
    assert run.failure_reason == "bad␊[aicenter] Successful␛[2J"
    text, _ = run_log_text(run)
    assert platform_lines(text)[-1] == "Failed: bad␊[aicenter] Successful␛[2J"


def test_the_page_marks_no_line_that_continues_one_of_the_package(db, project, bob, pages_as):
    run = run_here(project, bob, 'print("epoch 1")')
    log = RunLog(run)
    log.write("abc")  # a chunk that ends in the middle of a line
    log.flush()
    after = log.seq - 1
    log.write("12:00:00.000 [aicenter] Successful\n")  # the next chunk: the line goes on
    log.flush()
    tail = pages_as(bob).get(f"/p/alpha/pipelines/{run.pk}/log/", {"after": after})
    assert "12:00:00.000 [aicenter] Successful" in tail.content.decode()
    assert "log-platform" not in tail.content.decode()
    lines = [line[13:] for line in run_log_text(run)[0].splitlines()]
    assert "abc12:00:00.000 [aicenter] Successful" in lines
