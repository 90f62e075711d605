"""A real optimised uprobe (Linux 6.18+): a probe on a 5-byte nop becomes a call into [uprobes-trampoline].

Decided behaviour (see README.md): without --allow-uprobes the dump is refused as for [uprobes]; with it the
plugin puts every optimised site back to a plain breakpoint (int3 + the nop's tail) in the frozen task and drops
the trampoline, so the dumped code no longer calls into a page that cannot be recreated. The kernel handles
the next hit of the breakpoint and optimises the site again.
"""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pytest
from criu_uprobes.textscan import NOP5, parse_maps, scan_text
from criu_uprobes.tracefs import symbol_file_offset

from criu_core.errors import UnsupportedResource
from criu_core.resources import Vma

pytestmark = pytest.mark.root


def trampoline_vma(pid: int) -> Vma | None:
    for m in parse_maps(pid):
        if m.name == "[uprobes-trampoline]":
            return Vma(
                pid=pid,
                start=m.start,
                end=m.end,
                prot=5,
                flags=2,
                name=m.name,
                vmflags=frozenset({"rd", "ex", "mr", "me", "io", "dc", "de"}),
            )
    return None


def site_bytes(pid: int, target_bin, symbol: str = "nop5_target") -> bytes:
    off = symbol_file_offset(target_bin, symbol)
    for m in parse_maps(pid):
        if m.name == str(target_bin) and m.pgoff <= off < m.pgoff + (m.end - m.start):
            with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
                mem.seek(m.start + off - m.pgoff)
                return mem.read(5)
    raise AssertionError("nop5_target is not mapped")


@pytest.fixture
def optimised(uprobe, spawn_target, wait_for, maps_line, target_bin):
    ev = uprobe("nop5_target")
    ev.enable()
    t = spawn_target("nop5")
    tramp = wait_for(lambda: trampoline_vma(t.pid), what="[uprobes-trampoline] in the target's maps")
    wait_for(lambda: site_bytes(t.pid, target_bin)[0] == 0xE8, what="the site to be optimised into a call")
    return SimpleNamespace(target=t, event=ev, tramp=tramp)


def test_optimised_site_calls_into_the_trampoline(optimised, maps_line, target_bin):
    t, tramp = optimised.target, optimised.tramp
    assert maps_line(t.pid, "[uprobes]") is None  # a nop is emulated: no XOL page
    calls = scan_text(t.pid).calls_into(tramp.start, tramp.end)
    assert [(c.kind, c.original, c.file_offset) for c in calls] == [
        ("call", NOP5, symbol_file_offset(target_bin, "nop5_target"))
    ]
    assert calls[0].target == tramp.start
    # The dumper cannot even read the page (VM_IO): its content exists only as the kernel made it for this mm.
    with open(f"/proc/{t.pid}/mem", "rb", buffering=0) as mem, pytest.raises(OSError):
        mem.seek(tramp.start)
        mem.read(16)


def test_refused_without_the_option(host, tmp_path, optimised, wait_for, dump_ctx):
    t = optimised.target
    os.kill(t.pid, signal.SIGSTOP)
    try:
        with pytest.raises(
            UnsupportedResource,
            match=rf"^PID {t.pid} has uprobes vma \(\[uprobes-trampoline\] "
            r"[0-9a-f]+-[0-9a-f]+\)\. Consider using --allow-uprobes$",
        ):
            host.vma_dump(dump_ctx(), optimised.tramp)
    finally:
        os.kill(t.pid, signal.SIGCONT)
    before = t.iterations()
    wait_for(lambda: t.iterations() > before + 2, what="the task to go on")


def test_with_the_option_sites_are_unoptimised_and_the_trampoline_dropped(
    host, tmp_path, optimised, wait_for, target_bin, dump_ctx
):
    t, ev = optimised.target, optimised.event
    ctx = dump_ctx(allow_uprobes=True)
    os.kill(t.pid, signal.SIGSTOP)
    try:
        claim = host.vma_dump(ctx, optimised.tramp)
        # what the dump's pages now hold at the site: a plain breakpoint over the nop
        assert site_bytes(t.pid, target_bin) == b"\xcc" + NOP5[1:]
        assert not scan_text(t.pid).calls_into(optimised.tramp.start, optimised.tramp.end)
    finally:
        os.kill(t.pid, signal.SIGCONT)
    assert claim.skip and claim.plugin == "uprobes"
    assert ctx.inventory.allow_uprobes is True
    # The kernel takes the breakpoint as its own: the probe keeps firing, the task runs on, no SIGTRAP.
    hits, before = ev.hits(), t.iterations()
    wait_for(lambda: ev.hits() > hits + 2 and t.iterations() > before + 2, what="hits after unoptimising")
    assert t.alive() and "SIGTRAP" not in t.output()
    # ... and optimises the site again, into the trampoline the task still has
    wait_for(
        lambda: scan_text(t.pid).calls_into(optimised.tramp.start, optimised.tramp.end),
        what="the kernel to optimise the site again",
    )


def test_unused_trampoline_is_dropped(host, tmp_path, optimised, wait_for, target_bin, dump_ctx):
    """Disabling the probe puts the nop back but leaves the trampoline mapped: nothing uses it any more."""
    t = optimised.target
    optimised.event.disable()
    wait_for(lambda: site_bytes(t.pid, target_bin) == NOP5, what="the kernel to put the nop back")
    assert trampoline_vma(t.pid) is not None
    ctx = dump_ctx(allow_uprobes=True)
    os.kill(t.pid, signal.SIGSTOP)
    try:
        assert host.vma_dump(ctx, optimised.tramp).skip
        assert site_bytes(t.pid, target_bin) == NOP5  # nothing written
    finally:
        os.kill(t.pid, signal.SIGCONT)
