"""--uprobes-resync at restore, on live tasks put in the state a restore leaves them in.

The restore engine writes the dumped code page into the task after mapping the file. That state is made here
by hand in a stopped target: its code page gets the dumped bytes (a breakpoint, or none) written over whatever
the kernel installed, then the plugin's criu_vma_pages_restore runs through a real PluginHost.
"""

from __future__ import annotations

import os
import signal

import pytest
from criu_uprobes.textscan import parse_maps, write_text
from criu_uprobes.tracefs import symbol_file_offset

from criu_core.images.messages import new
from criu_core.resources import VmaImage

pytestmark = pytest.mark.root


def code_vma(pid: int, target_bin, symbol: str = "uprobe_target") -> tuple[VmaImage, int, bytes]:
    """The restored task's code VMA as the images describe it, the symbol's address and its first file byte."""
    off = symbol_file_offset(target_bin, symbol)
    for m in parse_maps(pid):
        if m.name == str(target_bin) and "x" in m.perms:
            entry = new(
                "vma.vma_entry", start=m.start, end=m.end, pgoff=m.pgoff, shmid=1, prot=5, flags=2, status=0, fd=-1
            )
            first = target_bin.read_bytes()[off : off + 1]
            return VmaImage(pid=pid, index=0, entry=entry), m.start + off - m.pgoff, first
    raise AssertionError("no code mapping")


def byte_at(pid: int, addr: int) -> bytes:
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        mem.seek(addr)
        return mem.read(1)


def state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def stopped(spawn_target, wait_for):
    """A running target (no probe yet), stopped once it is looping; SIGCONT it to go on."""
    t = spawn_target("xol")
    wait_for(lambda: t.iterations() >= 1, what="the target to loop")
    os.kill(t.pid, signal.SIGSTOP)
    wait_for(lambda: state(t.pid) == "T", what="the target to stop")
    return t


def test_stale_breakpoint_kills_the_task_without_resync(host, tmp_path, stopped, target_bin, wait_for, restore_ctx):
    """The failure --allow-uprobes promises away: a dumped breakpoint without its probe."""
    vma, site, _ = code_vma(stopped.pid, target_bin)
    write_text(stopped.pid, site, b"\xcc")  # the dumped page, as the core writes it back
    host.vma_pages_restore(restore_ctx(), vma, remote=None)  # option off: nothing changes
    assert byte_at(stopped.pid, site) == b"\xcc"
    os.kill(stopped.pid, signal.SIGCONT)
    assert stopped.proc.wait(timeout=10) == 42
    assert "SIGTRAP si_code=0x80" in stopped.output()  # SI_KERNEL: an int3 no uprobe owns


def test_resync_removes_a_stale_breakpoint(host, tmp_path, stopped, target_bin, wait_for, restore_ctx):
    vma, site, first = code_vma(stopped.pid, target_bin)
    write_text(stopped.pid, site, b"\xcc")
    host.vma_pages_restore(restore_ctx(uprobes_resync=True), vma, remote=None)
    assert byte_at(stopped.pid, site) == first
    os.kill(stopped.pid, signal.SIGCONT)
    before = stopped.iterations()
    wait_for(lambda: stopped.iterations() > before + 2, what="the task to go on")
    assert stopped.alive() and "SIGTRAP" not in stopped.output()


def test_resync_keeps_the_breakpoint_of_an_active_probe(
    host, tmp_path, uprobe, spawn_target, target_bin, wait_for, maps_line, restore_ctx
):
    ev = uprobe("uprobe_target")
    ev.enable()
    t = spawn_target("xol")
    wait_for(lambda: maps_line(t.pid, "[uprobes]"), what="[uprobes]")
    os.kill(t.pid, signal.SIGSTOP)
    vma, site, _ = code_vma(t.pid, target_bin)
    try:
        assert byte_at(t.pid, site) == b"\xcc"
        host.vma_pages_restore(restore_ctx(uprobes_resync=True), vma, remote=None)
        assert byte_at(t.pid, site) == b"\xcc"
    finally:
        os.kill(t.pid, signal.SIGCONT)
    hits = ev.hits()
    wait_for(lambda: ev.hits() > hits + 2, what="the probe to keep firing")


def test_resync_puts_in_a_probe_added_since_the_dump(
    host, tmp_path, uprobe, stopped, target_bin, wait_for, restore_ctx
):
    vma, site, first = code_vma(stopped.pid, target_bin)
    ev = uprobe("uprobe_target")
    ev.enable()  # the kernel installs the breakpoint in every task that maps the file ...
    wait_for(lambda: byte_at(stopped.pid, site) == b"\xcc", what="the kernel's breakpoint")
    write_text(stopped.pid, site, first)  # ... and the core's write of the dumped page wipes it out
    host.vma_pages_restore(restore_ctx(uprobes_resync=True), vma, remote=None)
    assert byte_at(stopped.pid, site) == b"\xcc"
    os.kill(stopped.pid, signal.SIGCONT)
    wait_for(lambda: ev.hits() > 2, what="the new probe to fire in the task")
    assert "SIGTRAP" not in stopped.output()


def test_resync_leaves_pages_the_task_changed_itself(host, tmp_path, stopped, target_bin, restore_ctx):
    vma, site, _ = code_vma(stopped.pid, target_bin)
    nop5 = site - symbol_file_offset(target_bin, "uprobe_target") + symbol_file_offset(target_bin, "nop5_target")
    assert site >> 12 == nop5 >> 12, "both functions on one page"
    write_text(stopped.pid, site, b"\xcc")
    write_text(stopped.pid, nop5 + 6, b"\x90")  # the ud2 after nop5_target's ret: never run
    ctx = restore_ctx(uprobes_resync=True)
    host.vma_pages_restore(ctx, vma, remote=None)
    assert byte_at(stopped.pid, site) == b"\xcc"  # not ours to judge: left as dumped
