"""The plugin's decisions through a real PluginHost, on VMAs as /proc shows them (no live task needed)."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from criu_core.errors import CriuError, UnsupportedResource
from criu_core.images.messages import new
from criu_core.resources import Vma

XOL = Vma(
    pid=4242,
    start=0x7FFFFFFFE000,
    end=0x7FFFFFFFF000,
    prot=4,
    flags=2,
    name="[uprobes]",
    vmflags=frozenset({"ex", "me", "io", "dc", "de"}),
)
HEAP = Vma(pid=4242, start=0x55C164CF4000, end=0x55C164D15000, prot=3, flags=2, name="[heap]")


def test_option_is_declared_for_dump_and_restore(host):
    spec = host.options.specs["allow-uprobes"]
    assert spec.kind == "flag" and spec.owner == "uprobes"
    assert set(spec.stages) == {"dump", "restore"}
    assert host.options.defaults().allow_uprobes is False


def test_resync_option_is_declared_for_restore_only(host):
    spec = host.options.specs["uprobes-resync"]
    assert spec.kind == "flag" and spec.owner == "uprobes" and spec.stages == ("restore",)
    assert host.options.defaults().uprobes_resync is False


def test_uprobes_vma_refused_without_the_option(host, tmp_path, dump_ctx):
    ctx = dump_ctx()
    with pytest.raises(UnsupportedResource) as err:
        host.vma_dump(ctx, XOL)
    assert str(err.value) == "PID 4242 has uprobes vma. Consider using --allow-uprobes"
    assert not ctx.inventory.HasField("allow_uprobes")


def test_uprobes_vma_dropped_with_the_option_and_inventory_flag_set(host, tmp_path, dump_ctx):
    ctx = dump_ctx(allow_uprobes=True)
    claim = host.vma_dump(ctx, XOL)
    assert claim.skip and claim.plugin == "uprobes"
    assert ctx.inventory.allow_uprobes is True


def test_option_without_uprobes_vma_leaves_the_inventory_alone(host, tmp_path, dump_ctx, not_ours):
    ctx = dump_ctx(allow_uprobes=True)
    assert not_ours(host.pm.hook.criu_vma_dump(ctx=ctx, vma=HEAP))
    assert not ctx.inventory.HasField("allow_uprobes")


def test_name_must_match_exactly(host, tmp_path, dump_ctx, not_ours):
    ctx = dump_ctx(allow_uprobes=True)
    lookalike = Vma(
        pid=1, start=0x1000, end=0x2000, prot=5, flags=2, name="/tmp/[uprobes]", inode=7, path="/tmp/[uprobes]"
    )
    assert not_ours(host.pm.hook.criu_vma_dump(ctx=ctx, vma=lookalike))


def test_restore_refused_without_the_option(host, tmp_path, restore_ctx):
    ctx = restore_ctx()
    with pytest.raises(CriuError, match=r"^Dumped with --allow-uprobes\. Need to set it on restore as well\.$"):
        host.inventory_check(ctx, new("inventory.inventory_entry", img_version=2, allow_uprobes=True))


def test_restore_accepted_with_the_option_or_without_the_flag(host, tmp_path, restore_ctx):
    flagged = new("inventory.inventory_entry", img_version=2, allow_uprobes=True)
    host.inventory_check(restore_ctx(allow_uprobes=True), flagged)
    host.inventory_check(restore_ctx(), new("inventory.inventory_entry", img_version=2))  # absent
    host.inventory_check(restore_ctx(), SimpleNamespace())  # a stand-in without the field


def test_inventory_flag_survives_the_image_file(host, tmp_path, image_dir, dump_ctx, restore_ctx):
    from criu_core.images.imagedir import ImageDir

    ctx = dump_ctx(allow_uprobes=True)
    host.vma_dump(ctx, XOL)
    ImageDir(image_dir).write_one("inventory", ctx.inventory)
    inv = ImageDir(image_dir).read_one("inventory")
    assert inv.HasField("allow_uprobes") and inv.allow_uprobes
    with pytest.raises(CriuError, match="Need to set it on restore as well"):
        host.inventory_check(restore_ctx(), inv)


def test_dump_with_allow_uprobes_stays_restorable_by_criu_4_2(host, tmp_path, dump_ctx):
    ctx = dump_ctx(allow_uprobes=True)
    host.vma_dump(ctx, XOL)
    assert "uprobes" not in ctx.used_plugins


TRAMP = Vma(pid=4242, start=0x55C15A087000, end=0x55C15A088000, prot=5, flags=2, name="[uprobes-trampoline]")


def test_trampoline_refused_without_the_option(host, tmp_path, dump_ctx):
    with pytest.raises(
        UnsupportedResource,
        match=r"^PID 4242 has uprobes vma \(\[uprobes-trampoline\] "
        r"55c15a087000-55c15a088000\)\. Consider using --allow-uprobes$",
    ):
        host.vma_dump(dump_ctx(), TRAMP)


def test_trampoline_refused_while_a_thread_runs_in_it(host, tmp_path, recorded_proc, dump_ctx):
    from criu_uprobes.vmas import dump_trampoline_vma

    # recorded from a task stopped with its pc in the trampoline code (between "syscall" and "pop %rax")
    proc = recorded_proc(
        {
            "4242/maps": "55c15a087000-55c15a088000 r-xp 00000000 00:00 0                          [uprobes-trampoline]\n"
            "7ffe5b578000-7ffe5b599000 rw-p 00000000 00:00 0                          [stack]\n",
            "4242/task/4242/syscall": "-1 0x7ffe5b5981a8 0x55c15a08700d\n",
            "4242/task/4243/syscall": "230 0x0 0x0 0x7ffe5b5981e0 0x0 0x0 0x75 0x7ffe5b5981c8 0x7effb0c4a503\n",
        }
    )
    ctx = dump_ctx(allow_uprobes=True)
    with pytest.raises(
        UnsupportedResource,
        match=r"thread 4242 is inside the optimised uprobe trampoline "
        r".*\(pc 55c15a08700d\).*dump again",
    ):
        dump_trampoline_vma(ctx, TRAMP, proc=str(proc))
    assert not ctx.inventory.HasField("allow_uprobes")


class FakeRemote:
    """Records the injected syscalls of the restore's remote task handle."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def syscall(self, nr, *args, check=True):
        self.calls.append((nr, *args))
        return {"openat": 7, "mmap": 0x7F0000000000}.get(nr, 0)

    def write_mem(self, addr, data):
        self.calls.append(("write_mem", addr, data))

    @contextmanager
    def scratch(self, size=4096):
        yield 0x1000
