"""What a ``criu-py`` command loads: the fixed cost of a trivial dump or restore is mostly imports, so the
properties that keep it low are checked on real commands (not timed: timings are bench/'s job).

* ``--version`` loads neither pluggy, logging nor protobuf;
* a dump and a restore of a live task leave protobuf's pure-Python message runtime (``python_message``,
  ``text_format``) unloaded (criu_core.images.pbruntime), and define no dataclass whose methods were compiled
  at import (criu_core.records): both cost milliseconds per command; a quiet one (no log file, default level,
  nothing to warn about) does not import logging (criu_core.log.DeferredLogger); ``calendar`` and
  ``ipaddress``, which protobuf and pathlib import but no such command uses, stay deferred (criu_core.lazymod);
* the servers (``swrk``, ``service``) run with the cyclic garbage collector on, which ``entry()`` turns off for
  one-shot commands.

Each command runs ``criu_core.cli.main.main`` in a fresh interpreter, then reports on ``sys.modules``.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

REPORT = r"""
import json, sys, types
from criu_core.cli.main import main

rc = main(sys.argv[1:])
lazy = {}
for name in ("google.protobuf.internal.python_message", "google.protobuf.text_format", "calendar", "ipaddress"):
    mod = sys.modules.get(name)
    # type() does not go through a lazy module's __getattribute__: it stays _LazyModule until first use.
    lazy[name] = "absent" if mod is None else ("loaded" if type(mod) is types.ModuleType else "lazy")
compiled = []
for mname, mod in list(sys.modules.items()):
    if not mname.startswith("criu_") or type(mod) is not types.ModuleType:
        continue
    for obj in list(vars(mod).values()):
        if isinstance(obj, type) and "__dataclass_fields__" in obj.__dict__ and obj.__module__ == mname:
            init = obj.__dict__.get("__init__")
            if init is not None and getattr(getattr(init, "__code__", None), "co_filename", "") == "<string>":
                compiled.append(f"{mname}.{obj.__qualname__}")
print(json.dumps({"rc": rc, "lazy": lazy, "compiled": sorted(compiled), "modules": sorted(sys.modules)}))
"""


def _command(*argv: str) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", REPORT, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "CRIU_PY_GLOBAL_CONFIG_DIR": "/nonexistent", "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.splitlines()[-1])
    assert report["rc"] == 0, f"criu-py {' '.join(argv)}: {res.stderr[-3000:]}"
    return report


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with this test's sys.path; it must succeed."""
    res = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert res.returncode == 0, res.stderr
    return res


def test_version_loads_no_plugin_machinery() -> None:
    report = _command("--version")
    loaded = set(report["modules"])
    assert not loaded & {"pluggy", "logging", "google.protobuf", "criu_core.plugins", "dataclasses"}


@pytest.mark.skipif(os.geteuid() != 0, reason="dump and restore need root (ptrace, clone3 with set_tid)")
def test_trivial_dump_and_restore_skip_the_pure_python_runtime(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    target = subprocess.Popen(
        ["sleep", "1000"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        dump = _command("dump", "-t", str(target.pid), "-D", str(images))
        target.wait(10)  # the dump killed it
        restore = _command("restore", "-D", str(images), "-d")
        os.kill(target.pid, 0)  # the restored task is there, with its PID
    finally:
        try:
            os.kill(target.pid, signal.SIGKILL)
            os.waitpid(target.pid, 0)  # our child, or reparented to us (the session is a subreaper)
        except (ProcessLookupError, ChildProcessError):
            pass
    for report in (dump, restore):
        assert "google.protobuf" in report["modules"]  # images were written and read through protobuf
        assert report["lazy"] == {
            "google.protobuf.internal.python_message": "lazy",
            "google.protobuf.text_format": "lazy",
            "calendar": "lazy",  # imported by protobuf's well_known_types, which upb loads
            "ipaddress": "lazy",  # imported by urllib.parse, which pathlib imports (criu_core.lazymod)
        }
        assert "locale" not in report["modules"]
        assert report["compiled"] == []
        assert "logging" not in report["modules"]


def test_deferred_stdlib_modules_load_on_first_use() -> None:
    """calendar, deferred when the images' protobuf modules load in the command, works as ever once used, in
    every import form, and protobuf's Timestamp (whose methods need it) too."""
    code = """
import sys, datetime
from criu_core.images import pbruntime
pbruntime.WANTED = True  # as criu_core.cli.main sets it
import criu_core.images.pb.inventory_pb2
assert type(sys.modules["calendar"]).__name__ == "DeferredModule" and "locale" not in sys.modules
import calendar
assert calendar.__spec__.name == "calendar" and "locale" not in sys.modules  # import and __spec__: not yet
from google.protobuf import timestamp_pb2
ts = timestamp_pb2.Timestamp()
ts.FromDatetime(datetime.datetime(2020, 1, 2, 3, 4, 5))
from calendar import monthrange
print(ts.seconds, ts.ToJsonString(), monthrange(2024, 2)[1], calendar.month_name[3], type(calendar).__name__)
"""
    res = _python(code)
    assert res.stdout.split() == ["1577934245", "2020-01-02T03:04:05Z", "29", "March", "module"]


def test_servers_run_with_the_garbage_collector_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """entry() turns the collector off for one-shot commands; swrk and service, which keep running, turn it on."""
    from criu_core import service
    from criu_core.cli import swrk

    seen: list[bool] = []
    monkeypatch.setattr(service, "serve_swrk", lambda fd, inv, log: seen.append(gc.isenabled()) or 0)
    monkeypatch.setattr(service, "run_service", lambda inv, log: seen.append(gc.isenabled()) or 0)
    try:
        gc.disable()
        swrk.serve_one(3, None, None)  # type: ignore[arg-type]
        gc.disable()
        swrk.serve_service(None, None)  # type: ignore[arg-type]
    finally:
        gc.enable()
    assert seen == [True, True]


def test_a_library_user_keeps_its_modules() -> None:
    """Importing criu_core's images outside the criu-py command defers nothing: protobuf's pure-Python runtime
    and calendar load as they always do."""
    code = """
import sys
import criu_core.images.pb.inventory_pb2
from criu_core.lazymod import DeferredModule
lazy = [n for n, m in sys.modules.items() if isinstance(m, DeferredModule) or type(getattr(m, "__spec__", None)
        and m.__spec__.loader).__name__ == "LazyLoader"]
print(lazy)
"""
    res = _python(code)
    assert res.stdout.split() == ["[]"]
