"""End to end: a real ``criu-py dump`` and ``restore`` of a real task, with the stand-in ``cuda-checkpoint`` active.

The task is a plain ``sleep`` that the stand-in declares a CUDA task; the plugin is loaded the ordinary way (its
entry point). These tests need the core engines (``criu_core.dump``, ``criu_core.restore``, ``criu_core.cli.main``)
and skip, saying so, where they are not there yet.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def start_target(subreaper: list[int]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(["sleep", "1000"], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subreaper.append(p.pid)
    return p


def explain(res: subprocess.CompletedProcess[str], log: Path) -> str:
    text = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    return f"exit {res.returncode}\nstderr: {res.stderr[-2000:]}\nlog:\n{text}"


def dump_sequence(pid: int) -> list[str]:
    return ["-h", f"--get-restore-tid --pid {pid}", f"--get-state --pid {pid}",
            f"--action lock --pid {pid} --timeout 10000",
            f"--get-restore-tid --pid {pid}", f"--action checkpoint --pid {pid}"]


def restore_sequence(pid: int) -> list[str]:
    return ["-h", f"--get-restore-tid --pid {pid}", f"--action restore --pid {pid}", f"--action unlock --pid {pid}"]


def test_dump_and_restore_of_a_cuda_task(criu_py, fake_cuda, fake_proc, subreaper, procs, tmp_path):
    target = start_target(subreaper)
    pid = target.pid
    fake_cuda.mark_cuda(pid)
    images = tmp_path / "images"
    images.mkdir()

    res = criu_py("dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v4")
    assert res.returncode == 0, explain(res, images / "dump.log")
    target.wait()  # the dump killed it: reap it so that its PID is free again
    assert fake_cuda.calls() == dump_sequence(pid)
    assert b"cuda_plugin" in (images / "inventory.img").read_bytes(), "inventory.plugins_entry lists cuda_plugin"

    before = len(fake_cuda.calls())
    res = criu_py("restore", "-D", str(images), "-d", "-o", "restore.log", "-v4")
    assert res.returncode == 0, explain(res, images / "restore.log")
    assert fake_cuda.calls()[before:] == restore_sequence(pid)
    assert fake_cuda.state(pid) == "running"
    assert procs.is_running(pid)


def test_leave_running_dump_gives_the_gpu_back(criu_py, fake_cuda, fake_proc, subreaper, procs, tmp_path):
    target = start_target(subreaper)
    pid = target.pid
    fake_cuda.mark_cuda(pid)
    images = tmp_path / "images"
    images.mkdir()
    res = criu_py("dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v4", "--leave-running")
    assert res.returncode == 0, explain(res, images / "dump.log")
    assert fake_cuda.calls() == dump_sequence(pid) + [
        f"--get-restore-tid --pid {pid}", f"--action restore --pid {pid}", f"--action unlock --pid {pid}"]
    assert fake_cuda.state(pid) == "running"
    assert procs.is_running(pid)


def test_plain_task_images_restore_without_a_call(criu_py, fake_cuda, fake_proc, subreaper, procs, tmp_path):
    target = start_target(subreaper)
    pid = target.pid
    images = tmp_path / "images"
    images.mkdir()
    res = criu_py("dump", "-t", str(pid), "-D", str(images), "-o", "dump.log")
    assert res.returncode == 0, explain(res, images / "dump.log")
    target.wait()
    assert fake_cuda.calls() == ["-h", f"--get-restore-tid --pid {pid}"]
    assert b"cuda_plugin" not in (images / "inventory.img").read_bytes()
    res = criu_py("restore", "-D", str(images), "-d", "-o", "restore.log")
    assert res.returncode == 0, explain(res, images / "restore.log")
    assert fake_cuda.calls() == ["-h", f"--get-restore-tid --pid {pid}"]
    assert procs.is_running(pid)


def test_cuda_images_are_refused_without_the_plugin(criu_py, fake_cuda, fake_proc, subreaper, procs, tmp_path,
                                                    monkeypatch):
    target = start_target(subreaper)
    pid = target.pid
    fake_cuda.mark_cuda(pid)
    images = tmp_path / "images"
    images.mkdir()
    res = criu_py("dump", "-t", str(pid), "-D", str(images), "-o", "dump.log")
    assert res.returncode == 0, explain(res, images / "dump.log")
    target.wait()
    procs.wait_gone(pid)
    monkeypatch.setenv("CRIU_PY_DISABLE_PLUGINS", "cuda_stub")
    res = criu_py("restore", "-D", str(images), "-d", "-o", "restore.log")
    assert res.returncode != 0
    assert "criu-plugin-cuda-stub" in res.stderr
    assert not os.path.exists(f"/proc/{pid}"), "nothing was created"
