"""The plugin against a real [uprobes] mapping: a C target hits an enabled tracefs uprobe whose instruction
runs out of line, then the plugin's hooks run through a real PluginHost on the Vma built from /proc/PID/maps."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest

from criu_core.errors import CriuError, UnsupportedResource
from criu_core.resources import Vma

pytestmark = pytest.mark.root

PROT = {"r": 1, "w": 2, "x": 4}
MAP_SHARED, MAP_PRIVATE = 0x01, 0x02


def vma_from_maps_line(pid: int, line: str) -> Vma:
    """A Vma as the core's dumper builds it from /proc/PID/maps (and smaps' VmFlags)."""
    addr, perms, off, dev, inode, *rest = line.split(maxsplit=5)
    name = rest[0].strip() if rest else ""
    start, end = (int(x, 16) for x in addr.split("-"))
    prot = sum(PROT[c] for c in perms[:3] if c in PROT)
    flags = MAP_SHARED if perms[3] == "s" else MAP_PRIVATE
    vmflags: frozenset[str] = frozenset()
    with open(f"/proc/{pid}/smaps") as f:
        inside = False
        for ln in f:
            if ln.startswith(addr + " "):
                inside = True
            elif inside and ln.startswith("VmFlags:"):
                vmflags = frozenset(ln.split()[1:])
                break
    return Vma(
        pid=pid,
        start=start,
        end=end,
        prot=prot,
        flags=flags,
        pgoff=int(off, 16),
        name=name,
        dev=dev,
        inode=int(inode),
        vmflags=vmflags,
        path=name if name.startswith("/") else None,
    )


@pytest.fixture
def probed_task(uprobe, spawn_target, wait_for, maps_line):
    """A running target that has hit an enabled uprobe on uprobe_target: it has a [uprobes] mapping."""
    ev = uprobe("uprobe_target")
    ev.enable()
    t = spawn_target("xol")
    line = wait_for(lambda: maps_line(t.pid, "[uprobes]"), what="[uprobes] in the target's maps")
    assert ev.hits() > 0
    return SimpleNamespace(target=t, event=ev, line=line)


def test_uprobes_vma_looks_as_documented(probed_task):
    vma = vma_from_maps_line(probed_task.target.pid, probed_task.line)
    assert vma.size == 4096 and vma.prot == 4 and vma.inode == 0
    assert {"ex", "io", "dc", "de"} <= vma.vmflags  # VM_IO: a generic handler would call it unsupported


def test_dump_refused_without_option_and_task_keeps_running(host, tmp_path, probed_task, wait_for, dump_ctx):
    t = probed_task.target
    vma = vma_from_maps_line(t.pid, probed_task.line)
    ctx = dump_ctx()
    os.kill(t.pid, signal.SIGSTOP)  # as frozen for a dump; a failed dump lets it go again
    try:
        with pytest.raises(
            UnsupportedResource, match=rf"^PID {t.pid} has uprobes vma\. Consider using --allow-uprobes$"
        ):
            host.vma_dump(ctx, vma)
    finally:
        os.kill(t.pid, signal.SIGCONT)
    assert not ctx.inventory.HasField("allow_uprobes")
    before, hits = t.iterations(), probed_task.event.hits()
    wait_for(lambda: t.iterations() > before + 2 and probed_task.event.hits() > hits, what="the task to go on")
    assert t.alive() and "SIGTRAP" not in t.output()


def test_dump_with_option_drops_the_vma_and_sets_the_inventory_flag(host, tmp_path, probed_task, dump_ctx):
    vma = vma_from_maps_line(probed_task.target.pid, probed_task.line)
    ctx = dump_ctx(allow_uprobes=True)
    claim = host.vma_dump(ctx, vma)
    assert claim.skip and claim.plugin == "uprobes"
    assert ctx.inventory.allow_uprobes is True


def test_other_mappings_of_a_probed_task_are_not_claimed(host, tmp_path, probed_task, dump_ctx, not_ours):
    ctx = dump_ctx(allow_uprobes=True)
    with open(f"/proc/{probed_task.target.pid}/maps") as f:
        others = [ln for ln in f.read().splitlines() if not ln.endswith("[uprobes]")]
    for line in others:
        assert not_ours(host.pm.hook.criu_vma_dump(ctx=ctx, vma=vma_from_maps_line(probed_task.target.pid, line)))
    assert not ctx.inventory.HasField("allow_uprobes")


def test_restore_inventory_check_needs_the_option(host, tmp_path, probed_task, dump_ctx, restore_ctx):
    # the inventory a dump with the option wrote, from the real claim
    dctx = dump_ctx(allow_uprobes=True)
    host.vma_dump(dctx, vma_from_maps_line(probed_task.target.pid, probed_task.line))
    with pytest.raises(CriuError, match="Dumped with --allow-uprobes. Need to set it on restore as well."):
        host.inventory_check(restore_ctx(), dctx.inventory)
    host.inventory_check(restore_ctx(allow_uprobes=True), dctx.inventory)


def test_probe_cleanup_leaves_no_event(tracefs, uprobe, spawn_target, wait_for, maps_line):
    ev = uprobe("uprobe_target")
    ev.enable()
    t = spawn_target("xol")
    wait_for(lambda: maps_line(t.pid, "[uprobes]"), what="[uprobes]")
    ev.remove()  # enabled: remove() disables first (a delete of an enabled event fails with EBUSY)
    assert not any(ev.name in line for line in tracefs.uprobe_events())
    # The XOL page stays once created (the kernel never unmaps it) and the task runs on without the probe.
    before = t.iterations()
    wait_for(lambda: t.iterations() > before + 2, what="the task to go on")
    assert maps_line(t.pid, "[uprobes]") is not None and t.alive()
