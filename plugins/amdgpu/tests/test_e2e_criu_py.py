"""End to end: ``criu-py dump`` and ``restore`` of a C process holding the FUSE-emulated /dev/kfd open.

The plugin is loaded the ordinary way (its entry point) and finds the emulated device through its options. These
tests need the core engines (``criu_core.dump``, ``criu_core.restore``, ``criu_core.cli.main``) and skip, saying
so, where they are not there yet. A second test runs the same against the real ``/dev/kfd`` on a machine with an
AMD GPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from criu_core.testing import missing_engines

from criu_amdgpu.emu.sysfs import GpuSpec, write_topology

HERE = Path(__file__).resolve().parent
TARGET_C = HERE.parent / "criu_amdgpu" / "emu" / "kfd_target.c"
GPU = 0x70B3
CRIU_OP = "0xc0384b22"

pytestmark = pytest.mark.root


def criu_py(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    code = "import sys; from criu_core.cli.main import main; sys.argv[0] = 'criu-py'; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], check=False, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def explain(res: subprocess.CompletedProcess[str], log: Path) -> str:
    text = log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"
    return f"exit {res.returncode}\nstderr: {res.stderr[-2000:]}\nlog:\n{text}"


def _start(target: str, dev: str, subreaper: list[int], out: Path, gpu: int = GPU,
           extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The C client in "wait" mode; its output goes to a regular file (a dump must see only plain descriptors)."""
    with open(out, "w") as f:
        proc = subprocess.Popen([target, dev, str(gpu), "wait", *extra], stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True, stdin=subprocess.DEVNULL, text=True)
    subreaper.append(proc.pid)
    deadline = time.monotonic() + 10
    while "ready=1" not in out.read_text():
        assert proc.poll() is None, f"target exited: {out.read_text()}"
        assert time.monotonic() < deadline, "target did not get ready"
        time.sleep(0.02)
    return proc, dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)


def _ask(pid: int, out: Path, key: str) -> str:
    """SIGUSR1 the target and wait for its next ``key=`` line."""
    seen = out.read_text().count(f"{key}=")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while out.read_text().count(f"{key}=") == seen:
        assert time.monotonic() < deadline, f"no {key}= from task {pid}: {out.read_text()}"
        time.sleep(0.02)
    return [ln for ln in out.read_text().splitlines() if ln.startswith(f"{key}=")][-1].split("=", 1)[1]


def _machine(tmp_path: Path, dev: str) -> list[str]:
    """The emulated machine's options: the FUSE mount holds kfd and dri/renderD128, the topology is a file tree."""
    machine = tmp_path / "machine"
    write_topology(machine, [GpuSpec(GPU, 128)])
    return ["--amdgpu-kfd-path", dev, "--amdgpu-dev-root", str(Path(dev).parent),
            "--amdgpu-topology-root", str(machine)]


@pytest.mark.skipif(missing_engines() is not None, reason=missing_engines() or "")
def test_dump_and_restore_of_a_kfd_process(fuse_kfd, target_bin, subreaper, tmp_path):
    """The target maps a VRAM and a GTT BO through the render node and fills them with random bytes of its own;
    after dump, kill and restore, the emulator's BO memory and the task's own mappings hold those bytes."""
    dev, log = fuse_kfd
    opts = _machine(tmp_path, dev)
    render = str(Path(dev).parent / "dri" / "renderD128")
    out, pattern = tmp_path / "target.out", tmp_path / "pattern.bin"
    proc, kv = _start(target_bin, dev, subreaper, out, extra=(render, str(pattern)))
    pid, fd = proc.pid, int(kv["fd"])
    (vram_va, vram_size), (gtt_va, gtt_size) = ((int(v.split(",")[0], 16), int(v.split(",")[1]))
                                                for v in (kv["vram"], kv["gtt"]))
    chosen = pattern.read_bytes()
    assert len(chosen) == vram_size + gtt_size and len(set(chosen)) > 200, "the target's random bytes"
    images = tmp_path / "images"
    images.mkdir()

    res = criu_py(tmp_path, "dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v4", *opts)
    assert res.returncode == 0, explain(res, images / "dump.log")
    proc.wait()
    kfd_images = sorted(p.name for p in images.glob("amdgpu-kfd-*.img"))
    assert len(kfd_images) == 1
    assert b"amdgpu_plugin" in (images / "inventory.img").read_bytes()
    pages = list(images.glob(f"amdgpu-pages-*-{GPU:04x}.img"))
    assert len(pages) == 1 and pages[0].read_bytes()[8:] == chosen, "BO contents read through the render node"
    ops = [ln.split() for ln in log.read_text().splitlines() if ln.split()[3] == CRIU_OP]
    assert [o[4] for o in ops if o[2] == str(pid)][:3] == ["0", "1", "2"], "PROCESS_INFO, CHECKPOINT, UNPAUSE"

    before = len(ops)
    res = criu_py(tmp_path, "restore", "-D", str(images), "-d", "-o", "restore.log", "-v4", *opts)
    assert res.returncode == 0, explain(res, images / "restore.log")
    ops = [ln.split() for ln in log.read_text().splitlines() if ln.split()[3] == CRIU_OP][before:]
    restore = [o for o in ops if o[4] == "3"]
    assert restore and restore[0][1] == str(pid) and restore[0][6] == "0", "RESTORE issued by the restored task"
    assert any(o[4] == "4" and o[5] == str(pid) and o[6] == "0" for o in ops), "RESUME of the restored pid"
    assert os.readlink(f"/proc/{pid}/fd/{fd}") == dev, "the KFD descriptor is back at its number"
    # the emulator's side: the BOs RESTORE made anew (the old ones went with the dumped process) hold the bytes
    store = tmp_path / "store" / str(pid)
    assert (store / f"{vram_va:x}.bo").read_bytes() == chosen[:vram_size]
    assert (store / f"{gtt_va:x}.bo").read_bytes() == chosen[vram_size:]
    # the task's side: its KFD process has its four BOs, and its mappings (remapped at the offsets RESTORE gave)
    # hold what it wrote before the dump
    assert _ask(pid, out, "probe") == f"4,{pid}"
    assert [ln for ln in out.read_text().splitlines() if ln.startswith("verify=")][-1] == "verify=ok"
    assert os.readlink(f"/proc/{pid}/fd/{kv['render_fd']}") == render


@pytest.mark.skipif(missing_engines() is not None, reason=missing_engines() or "")
def test_a_render_node_with_gem_bos_is_refused_and_the_task_runs_on(fuse_kfd, target_bin, subreaper, tmp_path):
    """CRIU 4.2 records a render node as its GPU only: a task that made a BO through the render node (GEM create,
    mapped and filled) is not dumped, with one line naming the task and descriptor; it carries on unharmed."""
    dev, log = fuse_kfd
    opts = _machine(tmp_path, dev)
    render = str(Path(dev).parent / "dri" / "renderD128")
    out = tmp_path / "target.out"
    proc, kv = _start(target_bin, dev, subreaper, out, extra=(render, str(tmp_path / "pattern.bin"), "gem"))
    pid = proc.pid
    assert "gem" in kv
    images = tmp_path / "images"
    images.mkdir()
    res = criu_py(tmp_path, "dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v4", *opts)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"criu-py: amdgpu: task {pid} fd {kv['render_fd']} (renderD128): 1 GEM buffer object(s)"), res.stderr
    assert proc.poll() is None
    ops = [ln.split() for ln in log.read_text().splitlines() if ln.split()[3] == CRIU_OP and ln.split()[2] == str(pid)]
    assert [o[4] for o in ops] == ["0", "1", "2"], "the failed dump UNPAUSEd what it paused"
    assert _ask(pid, out, "probe") == f"4,{pid}"
    assert [ln for ln in out.read_text().splitlines() if ln.startswith("verify=")][-1] == "verify=ok"


@pytest.mark.device("/dev/kfd")
@pytest.mark.skipif(missing_engines() is not None, reason=missing_engines() or "")
def test_dump_and_restore_on_a_real_amd_gpu(target_bin, subreaper, tmp_path):
    from criu_amdgpu.topology import parse_topology

    node = parse_topology("/").gpus[0]
    out, pattern = tmp_path / "target.out", tmp_path / "pattern.bin"
    proc, kv = _start(target_bin, "/dev/kfd", subreaper, out, node.gpu_id,
                      (f"/dev/dri/renderD{node.render_minor}", str(pattern)))
    fd = int(kv["fd"])
    images = tmp_path / "images"
    images.mkdir()
    res = criu_py(tmp_path, "dump", "-t", str(proc.pid), "-D", str(images), "-o", "dump.log", "-v4")
    assert res.returncode == 0, explain(res, images / "dump.log")
    proc.wait()
    res = criu_py(tmp_path, "restore", "-D", str(images), "-d", "-o", "restore.log", "-v4")
    assert res.returncode == 0, explain(res, images / "restore.log")
    assert os.path.exists(f"/proc/{proc.pid}")
    assert os.readlink(f"/proc/{proc.pid}/fd/{fd}") == "/dev/kfd"
    _ask(proc.pid, out, "probe")
    assert [ln for ln in out.read_text().splitlines() if ln.startswith("verify=")][-1] == "verify=ok"
