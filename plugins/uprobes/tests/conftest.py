"""Fixtures of the uprobes plugin's tests: the C target, tracefs, real uprobe events, running targets."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import criu_uprobes.plugin as uprobes_plugin
import pytest
from criu_uprobes.tracefs import Tracefs, UprobeEvent, symbol_file_offset

from criu_core.context import DumpContext, RestoreContext
from criu_core.images.messages import new

TARGET_SRC = Path(__file__).parent / "targets" / "uprobe_target.c"
_counter = itertools.count()


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll ``cond`` until it returns something true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def maps_line(pid: int, name: str) -> str | None:
    """The /proc/PID/maps line whose name is exactly ``name``, or None."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].strip() == name:
                    return line.rstrip("\n")
    except FileNotFoundError:
        return None
    return None


@pytest.fixture(scope="session")
def target_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C target, compiled so that uprobe_target's first instruction needs XOL."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("uprobe-target") / "uprobe_target"
    subprocess.run(["gcc", "-O2", "-fcf-protection=none", "-o", str(out), str(TARGET_SRC)], check=True)
    return out


@pytest.fixture(scope="session")
def tracefs() -> Iterator[Tracefs]:
    """tracefs with uprobe_events (mounted for the session if it was not; unmounted at the end then)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (tracefs uprobes)")
    try:
        tfs = Tracefs.find_or_mount()
    except Exception as exc:  # noqa: BLE001 - any failure means: no uprobes here
        pytest.skip(f"tracefs with uprobe_events is not available: {exc}")
    yield tfs
    tfs.close()


@pytest.fixture
def uprobe(tracefs: Tracefs, target_bin: Path) -> Iterator[Callable[[str], UprobeEvent]]:
    """``ev = uprobe("uprobe_target")`` defines a uprobe on that symbol of the target (not enabled yet).

    Every event made here is disabled and deleted at teardown, whatever the test did.
    """
    made: list[UprobeEvent] = []

    def make(symbol: str) -> UprobeEvent:
        ev = UprobeEvent.create(
            target_bin,
            symbol_file_offset(target_bin, symbol),
            group="criu_uprobes_test",
            event=f"{symbol}_{os.getpid()}_{next(_counter)}",
            tracefs=tracefs,
        )
        made.append(ev)
        return ev

    yield make
    for ev in made:
        ev.remove()


@dataclass
class Target:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text()

    def iterations(self) -> int:
        lines = [ln for ln in self.output().splitlines() if ln.startswith("iter ")]
        return int(lines[-1].split()[1]) if lines else -1

    def alive(self) -> bool:
        return self.proc.poll() is None


@pytest.fixture
def spawn_target(target_bin: Path, tmp_path: Path) -> Iterator[Callable[[str], Target]]:
    """``t = spawn_target("xol")`` starts the target in its own session; it is killed at teardown."""
    started: list[Target] = []

    def spawn(mode: str) -> Target:
        log = tmp_path / f"target-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(target_bin), mode],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        t = Target(proc, log)
        started.append(t)
        return t

    yield spawn
    for t in started:
        if t.alive():
            os.kill(t.pid, signal.SIGKILL)
        t.proc.wait()


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    return wait_for


@pytest.fixture(name="maps_line")
def maps_line_fixture() -> Callable[[int, str], str | None]:
    return maps_line


# ------------------------------------------------------------------------------------------ hooks through a host


def not_ours(claim) -> bool:
    """The plugin left the VMA to others (the built-in memory handler claims ordinary mappings)."""
    return claim is None or claim.plugin != "uprobes"


@pytest.fixture(name="not_ours")
def not_ours_fixture() -> Callable[[object], bool]:
    return not_ours


@pytest.fixture
def host(plugin_host):
    """The core's ``plugin_host`` with this plugin registered as its distribution would register it."""
    plugin_host.register(uprobes_plugin, "uprobes", distribution="criu-plugin-uprobes")
    return plugin_host


def _options(host, opts: dict[str, object]):
    options = host.options.defaults()
    for k, v in opts.items():
        setattr(options, k, v)
    return options


@pytest.fixture
def dump_ctx(host, tmp_path: Path) -> Callable[..., DumpContext]:
    """``dump_ctx(**options)``: a DumpContext on ``host`` and ``tmp_path`` whose inventory is as a dump starts it
    (CRIU 4.2: img_version 2, fdinfo_per_id)."""

    def make(**opts: object) -> DumpContext:
        inventory = new("inventory.inventory_entry", img_version=2, fdinfo_per_id=True)
        return DumpContext(options=_options(host, opts), host=host, images_dir=tmp_path, inventory=inventory)

    return make


@pytest.fixture
def restore_ctx(host, tmp_path: Path) -> Callable[..., RestoreContext]:
    """``restore_ctx(**options)``: a RestoreContext on ``host`` and ``tmp_path``."""

    def make(**opts: object) -> RestoreContext:
        return RestoreContext(options=_options(host, opts), host=host, images_dir=tmp_path)

    return make
