"""On a real NVIDIA GPU: a counter kept in device memory survives the plugin's checkpoint and a dump/restore.

Needs an NVIDIA GPU (``/proc/driver/nvidia/gpus/``), an r555+ ``cuda-checkpoint`` on ``$PATH`` (``-h`` mentions
``--action``), ``nvcc`` (``$PATH`` or ``/usr/local/cuda/bin``) and root. Skipped, with the missing piece named,
elsewhere. The CUDA source is ``cuda_counter.cu`` beside this file.

* ``test_hooks_on_a_real_gpu`` drives only the plugin (no core engine): lock and checkpoint the running program
  (its device memory moves into host memory, ``--get-state`` says ``checkpointed``), then a ``--leave-running``
  fini restores and unlocks it; the counter goes on from where it was.
* ``test_dump_restore_on_a_real_gpu`` runs ``criu-py dump`` (the task is killed) and ``criu-py restore``; the
  restored counter goes on from at least the last value written before the dump (it would start again from 1 if
  the device memory were lost). It also needs the core engines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import criu_cuda_stub.plugin
import pytest

from criu_core.context import DumpContext
from criu_core.plugins import PluginHost
from criu_core.resources import Task

HERE = Path(__file__).parent
SOURCE = HERE / "cuda_counter.cu"


def missing_gpu() -> str | None:
    gpus = Path("/proc/driver/nvidia/gpus")
    if not gpus.is_dir() or not any(gpus.iterdir()):
        return "no NVIDIA GPU on this machine (/proc/driver/nvidia/gpus/ is absent or empty)"
    tool = shutil.which("cuda-checkpoint")
    if tool is None:
        return "no cuda-checkpoint on $PATH (NVIDIA driver r555+ ships it)"
    usage = subprocess.run([tool, "-h"], check=False, capture_output=True, text=True, timeout=30)
    if "--action" not in usage.stdout + usage.stderr:
        return "cuda-checkpoint has no --action flag: the driver is older than r555"
    if nvcc() is None:
        return "nvcc not found on $PATH nor in /usr/local/cuda/bin"
    if os.geteuid() != 0:
        return "needs root"
    return None


def nvcc() -> str | None:
    return shutil.which("nvcc") or shutil.which("nvcc", path="/usr/local/cuda/bin")


pytestmark = pytest.mark.skipif(missing_gpu() is not None, reason=str(missing_gpu()))


@pytest.fixture(scope="module")
def counter_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cuda") / "cuda_counter"
    subprocess.run([str(nvcc()), "-O2", "-o", str(out), str(SOURCE)], check=True, timeout=300)
    return out


def read_counter(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def wait_counter(path: Path, above: int, timeout: float = 30) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = read_counter(path)
        if value > above:
            return value
        time.sleep(0.05)
    raise AssertionError(f"counter in {path} did not pass {above} within {timeout} s (last {read_counter(path)})")


def start_counter(binary: Path, out: Path, subreaper: list[int]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([str(binary), str(out)], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subreaper.append(p.pid)
    return p


def test_hooks_on_a_real_gpu(counter_binary, plugin_host: PluginHost, subreaper, tmp_path):
    plugin_host.register(criu_cuda_stub.plugin, "cuda_stub")
    out = tmp_path / "counter"
    prog = start_counter(counter_binary, out, subreaper)
    wait_counter(out, 5)
    opts = plugin_host.options.defaults()
    opts.leave_running = True
    ctx = DumpContext(options=opts, host=plugin_host, images_dir=tmp_path)
    task = Task(pid=prog.pid)
    plugin_host.init(ctx, "dump")
    plugin_host.devices_pause(ctx, task)
    plugin_host.devices_checkpoint(ctx, task)
    state = subprocess.run(["cuda-checkpoint", "--get-state", "--pid", str(prog.pid)], check=False,
                           capture_output=True, text=True, timeout=30)
    assert state.stdout.strip().startswith("checkpointed"), state
    frozen = read_counter(out)
    time.sleep(0.5)
    assert read_counter(out) <= frozen + 1, "a checkpointed CUDA task cannot reach the GPU"
    assert ctx.used_plugins == ["cuda_plugin"]
    plugin_host.fini(ctx, "dump", True)
    wait_counter(out, frozen + 5)
    assert prog.poll() is None, prog.stderr.read() if prog.stderr else ""


def test_dump_restore_on_a_real_gpu(counter_binary, criu_py, subreaper, procs, tmp_path):
    out = tmp_path / "counter"
    prog = start_counter(counter_binary, out, subreaper)
    wait_counter(out, 40)  # high enough that a counter starting again from 1 cannot pass for a continuation
    images = tmp_path / "images"
    images.mkdir()
    res = criu_py("dump", "-t", str(prog.pid), "-D", str(images), "-o", "dump.log", "-v4",
                  "--cuda-action-timeout", "120", timeout=300)
    assert res.returncode == 0, res.stderr
    last = read_counter(out)
    prog.wait()
    procs.wait_gone(prog.pid)
    assert b"cuda_plugin" in (images / "inventory.img").read_bytes()
    res = criu_py("restore", "-D", str(images), "-d", "-o", "restore.log", "-v4", timeout=300)
    assert res.returncode == 0, res.stderr
    first = wait_change(out, last)
    assert last < first <= last + 3, f"after restore the counter went from {last} to {first}: device memory lost"
    wait_counter(out, first + 5)
    assert procs.is_running(prog.pid)


def wait_change(path: Path, last: int, timeout: float = 30) -> int:
    """The first value written that differs from ``last``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = read_counter(path)
        if value not in (0, last):
            return value
        time.sleep(0.005)
    raise AssertionError(f"counter in {path} stayed at {last} for {timeout} s after restore")
