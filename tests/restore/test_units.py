"""Pure parts of the restore: XSAVE area rebuilding, register mapping, time offsets, free-area search."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from criu_core.builtin import regs_restore
from criu_core.builtin.regs_restore import build_regs, build_xstate, xstate_offsets
from criu_core.builtin.timens_restore import timens_offsets
from criu_core.errors import UnsupportedResource
from criu_core.images.messages import new
from criu_core.ptrace.restore_scratch import find_free_area
from criu_core.restore_plan import load_plan
from criu_core.sys.structs import UserRegs

GOLDEN = Path("/work/shared/fixtures/criu-4.2")
pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason="golden CRIU 4.2 dumps are not available")

# Intel-style standard-format offsets (CPUID leaf 0xD) for AVX and AVX-512; what this machine's CPU reports.
_INTEL = {2: (256, 576), 5: (64, 1088), 6: (512, 1152), 7: (1024, 1664)}


def _template(features: int, size: int) -> bytes:
    buf = bytearray(size)
    struct.pack_into("<Q", buf, 464, features)  # user_xstateregs.i387.xstate_fx_sw[0]: the xfeatures mask
    return bytes(buf)


@pytest.fixture
def intel_cpuid(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(leaf: int, sub: int) -> tuple[int, int, int, int] | None:
        size, off = _INTEL.get(sub, (0, 0))
        return (size, off, 0, 0)

    monkeypatch.setattr(regs_restore, "_cpuid", fake)


def test_offsets_follow_cpuid(intel_cpuid: None) -> None:
    assert xstate_offsets(_template(0xE7, 2688)) == {2: (576, 256), 5: (1088, 64), 6: (1152, 512), 7: (1664, 1024)}


def test_offsets_packed_without_cpuid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(regs_restore, "_cpuid", lambda leaf, sub: None)
    # an AMD-style packing: AVX, then AVX-512 right after it
    assert xstate_offsets(_template(0xE7, 2432)) == {2: (576, 256), 5: (832, 64), 6: (896, 512), 7: (1408, 1024)}


def test_build_xstate_places_every_component(intel_cpuid: None) -> None:
    fp = load_plan(GOLDEN / "sleep").root.core.thread_info.fpregs
    out = build_xstate(fp, _template(0xE7, 2688))
    assert len(out) == 2688
    assert struct.unpack_from("<HH", out, 0) == (fp.cwd, fp.swd)
    assert struct.unpack_from("<I", out, 24)[0] == fp.mxcsr
    assert struct.unpack_from("<64I", out, 160) == tuple(fp.xmm_space)
    assert struct.unpack_from("<64I", out, 576) == tuple(fp.xsave.ymmh_space)
    assert struct.unpack_from("<8Q", out, 1088) == tuple(fp.xsave.opmask_reg)
    assert struct.unpack_from("<128Q", out, 1664) == tuple(fp.xsave.hi16_zmm)
    bv, xcomp = struct.unpack_from("<QQ", out, 512)
    assert bv == fp.xsave.xstate_bv and xcomp == 0  # standard format: XCOMP_BV must be 0


def test_missing_cpu_feature_in_use_is_refused(intel_cpuid: None) -> None:
    fp = load_plan(GOLDEN / "sleep").root.core.thread_info.fpregs
    # a CPU with AVX only: the task's live AVX-512 state (xstate_bv bits 5 and 7) cannot be restored
    with pytest.raises(UnsupportedResource, match="component 5"):
        build_xstate(fp, _template(0x7, 832))


def test_wrong_component_size_is_refused(intel_cpuid: None) -> None:
    fp = load_plan(GOLDEN / "sleep").root.core.thread_info.fpregs
    del fp.xsave.opmask_reg[3:]
    with pytest.raises(Exception, match="component 5 is 24 bytes"):
        build_xstate(fp, _template(0xE7, 2688))


def test_build_regs_maps_names_and_cancels_restart() -> None:
    gp = load_plan(GOLDEN / "sleep").root.core.thread_info.gpregs
    regs = build_regs(gp, UserRegs())
    assert (regs.rip, regs.rsp, regs.rax, regs.eflags, regs.fs_base, regs.cs, regs.ss) == \
        (gp.ip, gp.sp, gp.ax, gp.flags, gp.fs_base, gp.cs, gp.ss)
    assert regs.orig_rax == (1 << 64) - 1  # no syscall restart on resume: the dump already fixed ip/ax


def test_compat_task_refused() -> None:
    gp = load_plan(GOLDEN / "sleep").root.core.thread_info.gpregs
    gp.mode = 2
    with pytest.raises(UnsupportedResource, match="compat"):
        build_regs(gp, UserRegs())


def test_timens_offsets() -> None:
    t = new("timens.timens_entry")
    t.monotonic.tv_sec, t.monotonic.tv_nsec = 1610, 594044533
    t.boottime.tv_sec, t.boottime.tv_nsec = 1610, 594044573
    text = timens_offsets(t, 780 * 10**9 + 900_000_000, 2000 * 10**9)
    assert text == "monotonic 829 694044533\nboottime -390 594044573\n"


def test_find_free_area_avoids_both_layouts() -> None:
    busy = [(0x100000000, 0x100010000), (0x100011000, 0x100020000)]
    addr = find_free_area(0x10000, busy)
    assert addr >= 0x100021000  # a page of distance from each neighbour, never in the 4 KiB hole
    assert all(addr + 0x10000 <= s or addr >= e for s, e in busy)
