"""CRIU-style log lines, levels, and where -o puts the file."""

from __future__ import annotations

import io
import logging
import re

from criu_core.log import close_logging, level_for_verbosity, setup_logging


def _emit(verbosity: int, *, log_pid: bool = False) -> list[str]:
    out = io.StringIO()
    log = setup_logging(verbosity, stream=out, log_pid=log_pid)
    try:
        log.debug("debug line")
        log.info("info line")
        log.warning("warn line")
        log.error("error line %d", 7)
    finally:
        close_logging()
    return out.getvalue().splitlines()


def test_levels():
    assert level_for_verbosity(0) > logging.CRITICAL
    assert [level_for_verbosity(v) for v in (1, 2, 3, 4, 5)] == [40, 30, 20, 10, 10]
    assert _emit(0) == []
    assert len(_emit(1)) == 1 and len(_emit(2)) == 2 and len(_emit(3)) == 3 and len(_emit(4)) == 4


def test_default_format_has_prefixes_but_no_timestamps():
    warn, err = _emit(2)
    assert re.fullmatch(
        r"Warn  \(tests/cli/test_log\.py:\d+\): warn line|Warn  \(cli/test_log\.py:\d+\): warn line", warn
    )
    assert re.search(r"^Error \(\S+test_log\.py:\d+\): error line 7$", err)


def test_timestamps_from_verbosity_3():
    lines = _emit(4)
    assert all(re.match(r"^\(\d{2}\.\d{6}\) ", line) for line in lines)
    assert lines[0].endswith(") debug line") and lines[1].endswith(") info line")
    assert re.match(r"^\(\d{2}\.\d{6}\) Error \(", lines[3])


def test_log_pid_puts_the_pid_on_each_line():
    import os

    lines = _emit(3, log_pid=True)
    assert all(re.match(rf"^\(\d{{2}}\.\d{{6}}\) +{os.getpid()}: ", line) for line in lines)


def test_log_file_is_relative_to_the_images_dir(run_cli, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    res = run_cli("check", "-D", str(imgs), "-o", "check.log", "-v4")
    assert res.returncode == 0 and res.stderr == ""
    text = (imgs / "check.log").read_text()
    assert re.search(r"^\(\d{2}\.\d{6}\) Version: 4\.2", text, re.MULTILINE)
    assert re.search(r"^\(\d{2}\.\d{6}\) pidfd_store: ", text, re.MULTILINE)


def test_log_file_is_relative_to_the_work_dir(run_cli, tmp_path):
    imgs, work = tmp_path / "imgs", tmp_path / "work"
    imgs.mkdir()
    work.mkdir()
    res = run_cli("check", "-D", str(imgs), "-W", str(work), "-o", "c.log", "-v3")
    assert res.returncode == 0
    assert (work / "c.log").exists() and not (imgs / "c.log").exists()
    res = run_cli("check", "-o", str(tmp_path / "abs.log"), "-D", str(imgs))
    assert (tmp_path / "abs.log").exists()


def test_failure_goes_to_stderr_and_into_the_log(run_cli, tmp_path):
    res = run_cli("check", "-D", str(tmp_path), "-o", "x.log", "--feature", "bogus")
    assert res.returncode == 1 and res.stderr == "criu-py: Unknown feature bogus\n"
    assert re.search(r"^Error \(\S+\): Unknown feature bogus$", (tmp_path / "x.log").read_text(), re.MULTILINE)


def test_missing_work_dir(run_cli, tmp_path):
    res = run_cli("check", "-W", str(tmp_path / "nope"))
    assert res.returncode == 1
    assert res.stderr == f"criu-py: Can't change directory to {tmp_path / 'nope'}: No such file or directory\n"


def test_quiet_run_log_sets_logging_up_at_its_first_shown_record():
    """open_run_log(2) without a file: lines below the level are dropped unseen, the first warning sets the
    real logger up (in a fresh interpreter: logging is not imported before it) and keeps the caller's line."""
    import subprocess
    import sys

    code = """
import sys
from criu_core.log import close_logging, logs_to_file, open_run_log
log = open_run_log(2)
log.debug("debug line"); log.info("info line %s", "x")
assert not log.isEnabledFor(20) and log.isEnabledFor(30) and not logs_to_file()
print("logging" in sys.modules, flush=True)
log.warning("warn %d", 1)  # line 8
log.error("error line")
print("logging" in sys.modules, flush=True)
close_logging()
"""
    res = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": ":".join(sys.path)},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True"]
    assert res.stderr.splitlines() == ["Warn  (<string>:8): warn 1", "Error (<string>:9): error line"]


def test_run_log_with_a_file_or_info_level_is_set_up_at_once(tmp_path):
    from criu_core.log import open_run_log

    try:
        log = open_run_log(2, tmp_path / "x.log")
        assert isinstance(log, logging.Logger) and (tmp_path / "x.log").exists()
        close_logging()
        assert isinstance(open_run_log(3), logging.Logger)
    finally:
        close_logging()


def test_deferred_run_log_keeps_a_handler_added_during_the_run(capsys):
    """The RPC's error capture attaches itself to the "criu" logger after the run's logging is opened: the
    deferred setup at the first error must add the run's handler next to it, not replace it."""
    from criu_core.log import open_run_log

    seen: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    try:
        log = open_run_log(2)
        assert not isinstance(log, logging.Logger)  # deferred
        logging.getLogger("criu").addHandler(Capture(logging.ERROR))
        log.error("first error %d", 1)
        assert seen == ["first error 1"]
        assert re.fullmatch(r"Error \(\S*test_log\.py:\d+\): first error 1\n", capsys.readouterr().err)
    finally:
        close_logging()
    assert logging.getLogger("criu").handlers == []
