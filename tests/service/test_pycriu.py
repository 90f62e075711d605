"""Interop with Debian's pycriu 3.17 (``/usr/bin/python3``): swrk through ``use_binary``, service through
``use_sk``; dump and restore of a real task once the engines are in this build."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
PYCRIU = Path("/usr/lib/python3/dist-packages/pycriu")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (os.path.exists(SYSTEM_PYTHON) and PYCRIU.is_dir()), reason="Debian's pycriu (package criu) is not installed"
)

_PRELUDE = """
import json, os, sys
sys.path.insert(0, '/usr/lib/python3/dist-packages')
from pycriu.criu import criu as Criu, CRIUException
from pycriu import rpc_pb2 as rpc
BIN = sys.argv[1]
out = {}
"""


def _engines_missing() -> str | None:
    for name in ("criu_core.dump", "criu_core.restore"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not in this build yet"
    return None


@pytest.fixture
def criu_bin(tmp_path: Path, rpc_env: dict[str, str]) -> Path:
    """An absolute path pycriu can execv: a wrapper running ``python -m criu_core.cli`` from this checkout."""
    path = tmp_path / "criu-py"
    env = " ".join(f"{k}={v}" for k, v in rpc_env.items() if k in ("PYTHONPATH", "CRIU_PY_GLOBAL_CONFIG_DIR", "HOME"))
    path.write_text(f'#!/bin/sh\nexec env {env} {sys.executable} -m criu_core.cli "$@"\n')
    path.chmod(0o755)
    return path


def _pycriu(script: str, *args: str, cwd: Path) -> dict:
    res = subprocess.run(
        [SYSTEM_PYTHON, "-c", _PRELUDE + textwrap.dedent(script) + "\nprint(json.dumps(out))\n", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_version_and_check_through_use_binary(criu_bin, tmp_path):
    out = _pycriu(
        """
        c = Criu(); c.use_binary(BIN)
        resp = c._send_req_and_recv_resp(rpc.criu_req(type=rpc.VERSION))
        out['version'] = [resp.type == rpc.VERSION, resp.success, resp.version.major_number,
                          resp.version.minor_number, resp.version.gitid]
        c = Criu(); c.use_binary(BIN)
        c.check()
        out['check'] = True
        c = Criu(); c.use_binary(BIN)
        req = rpc.criu_req(type=rpc.FEATURE_CHECK); req.features.mem_track = True
        resp = c._send_req_and_recv_resp(req)
        out['mem_track'] = [resp.success, resp.features.mem_track]
        """,
        str(criu_bin),
        cwd=tmp_path,
    )
    assert out == {"version": [True, True, 4, 2, ""], "check": True, "mem_track": [True, False]}


def test_dump_error_reaches_pycriu(criu_bin, tmp_path):
    out = _pycriu(
        """
        c = Criu(); c.use_binary(BIN)
        c.opts.images_dir_fd = -1
        c.opts.pid = 1
        try:
            c.dump()
        except CRIUException as e:
            out['errno'] = e.errno
        """,
        str(criu_bin),
        cwd=tmp_path,
    )
    assert out == {"errno": 56}  # EBADRQC: no images directory


def test_service_through_use_sk(rpc_env, tmp_path):
    sock = tmp_path / "svc.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "criu_core.cli", "service", "--address", str(sock)],
        env=rpc_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        out = _pycriu(
            """
            c = Criu(); c.use_sk(BIN)
            resp = c._send_req_and_recv_resp(rpc.criu_req(type=rpc.VERSION))
            out['version'] = [resp.success, resp.version.major_number, resp.version.minor_number]
            c = Criu(); c.use_sk(BIN)
            c.check()
            out['check'] = True
            """,
            str(sock),
            cwd=tmp_path,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert out == {"version": [True, 4, 2], "check": True}


_DUMP_RESTORE = """
dfd = os.open(sys.argv[2], os.O_DIRECTORY); os.set_inheritable(dfd, True)
target = int(sys.argv[3])
c = Criu(); c.use_binary(BIN)
c.opts.images_dir_fd = dfd; c.opts.pid = target; c.opts.log_file = 'dump.log'; c.opts.log_level = 4
try:
    out['restored'] = c.dump().restored
except CRIUException as e:
    out['dump_error'] = str(e)
"""

_RESTORE = """
dfd = os.open(sys.argv[2], os.O_DIRECTORY); os.set_inheritable(dfd, True)
c = Criu(); c.use_binary(BIN)
c.opts.images_dir_fd = dfd; c.opts.log_file = 'restore.log'; c.opts.log_level = 4
try:
    out['pid'] = c.restore().pid
except CRIUException as e:
    out['restore_error'] = str(e)
"""


def _wait_count_above(d: Path, n: int, timeout: float = 10.0) -> None:
    """Poll the counter's file (written every 100 ms) until it passes ``n``."""
    deadline = time.monotonic() + timeout
    while (got := _count(d)) <= n:
        assert time.monotonic() < deadline, f"the counter stayed at {got} (needed more than {n})"
        time.sleep(0.02)


def _count(tmp_path: Path) -> int:
    path = tmp_path / "count"
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else 0


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        assert time.monotonic() < deadline, f"{pid} is still there"
        time.sleep(0.02)


@pytest.mark.root
@pytest.mark.skipif(_engines_missing() is not None, reason=_engines_missing() or "")
def test_dump_and_restore_a_counter(criu_bin, tmp_path, subreaper, counter):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    proc = counter(tmp_path / "count")
    _wait_count_above(tmp_path, 0)  # running
    out = _pycriu(_DUMP_RESTORE, str(criu_bin), str(imgs), str(proc.pid), cwd=tmp_path)
    assert out == {"restored": False}, (imgs / "dump.log").read_text()
    assert (imgs / "inventory.img").exists()
    assert proc.wait(timeout=30) == -signal.SIGKILL  # dumped tasks are killed, as CRIU does
    _wait_gone(proc.pid)
    out = _pycriu(_RESTORE, str(criu_bin), str(imgs), cwd=tmp_path)
    assert out.get("pid") == proc.pid, (imgs / "restore.log").read_text()
    _wait_count_above(tmp_path, _count(tmp_path))  # it goes on counting where it stopped
    assert Path(f"/proc/{proc.pid}/comm").read_text() == "counter\n"
