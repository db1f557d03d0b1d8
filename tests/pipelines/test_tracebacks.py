"""The traceback under a failed run's reason: taken from the log as the runner wrote it."""

from pipelines.tracebacks import failure_traceback

WORKSPACE = "/srv/aicenter/var/workspaces/run-7-3cx9wmt2"

# A log as RunLog stores it: a time on each line, the platform's lines around the output of
# bootstrap's traceback.print_exc().
LOG = f"""\
09:08:20.786 [aicenter] package invoice_classifier 4.0: 3 files
09:08:20.801 training on 3 files
09:08:20.839 Traceback (most recent call last):
09:08:20.841   File "<string>", line 96, in <module>
09:08:20.841   File "<string>", line 73, in _timed
09:08:20.841   File "{WORKSPACE}/package/train.py", line 10, in train
09:08:20.841     raise ValueError('no invoices in ' + data_directory)
09:08:20.841 ValueError: no invoices in ./data
09:08:20.851 [aicenter] Failed: ValueError: no invoices in ./data
"""


def test_it_keeps_the_users_frames_with_paths_relative_to_the_package():
    assert failure_traceback(LOG, run_id=7) == (
        "Traceback (most recent call last):\n"
        '  File "train.py", line 10, in train\n'
        "    raise ValueError('no invoices in ' + data_directory)\n"
        "ValueError: no invoices in ./data"
    )


def test_it_drops_the_runners_frames_of_an_import_and_shortens_library_paths():
    log = f"""\
Traceback (most recent call last):
  File "<string>", line 88, in <module>
  File "<string>", line 73, in _timed
  File "<string>", line 88, in <lambda>
  File "{WORKSPACE}/package/train.py", line 1, in <module>
    import pandas as pd
  File "/srv/aicenter/var/environments/3f2a/lib/python3.11/site-packages/pandas/__init__.py", line 3, in <module>
    from pandas.compat import is_numpy_dev
  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
FileNotFoundError: [Errno 2] No such file or directory: '{WORKSPACE}/package/data/labels.csv'
[aicenter] Failed: FileNotFoundError
"""  # noqa: E501
    cleaned = failure_traceback(log, run_id=7)
    assert "<string>" not in cleaned and "_timed" not in cleaned and "/srv/" not in cleaned
    assert '  File "train.py", line 1, in <module>\n    import pandas as pd' in cleaned
    assert '  File "site-packages/pandas/__init__.py", line 3' in cleaned
    assert '  File "python3.11/importlib/__init__.py", line 126' in cleaned
    assert cleaned.endswith("No such file or directory: 'data/labels.csv'")


def test_a_chained_exception_is_shown_whole_and_output_after_it_is_not():
    log = f"""\
10:00:00.000 Traceback (most recent call last):
10:00:00.000   File "{WORKSPACE}/package/train.py", line 5, in train
10:00:00.000     rows = int(text)
10:00:00.000 ValueError: invalid literal for int() with base 10: 'x'
10:00:00.000 
10:00:00.000 During handling of the above exception, another exception occurred:
10:00:00.000 
10:00:00.000 Traceback (most recent call last):
10:00:00.000   File "<string>", line 96, in <module>
10:00:00.000   File "<string>", line 73, in _timed
10:00:00.000   File "{WORKSPACE}/package/train.py", line 7, in train
10:00:00.000     raise RuntimeError("bad data")
10:00:00.000 RuntimeError: bad data
10:00:00.000 
10:00:00.001 epoch 3 (stdout flushed at exit)
10:00:00.002 [aicenter] Failed: RuntimeError: bad data
"""
    cleaned = failure_traceback(log, run_id=7)
    assert cleaned.startswith('Traceback (most recent call last):\n  File "train.py", line 5')
    assert "During handling of the above exception" in cleaned
    assert cleaned.endswith('    raise RuntimeError("bad data")\nRuntimeError: bad data')
    assert "<string>" not in cleaned and "epoch 3" not in cleaned


def test_only_this_runs_workspace_is_cut_and_a_log_without_a_traceback_gives_nothing():
    log = LOG.replace("run-7-", "run-71-")
    assert f'File "{WORKSPACE.replace("run-7-", "run-71-")}/package/train.py"' in (
        failure_traceback(log, run_id=7)
    )
    assert failure_traceback("[aicenter] Failed: killed by bob\n", run_id=7) == ""
