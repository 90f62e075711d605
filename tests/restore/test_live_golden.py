"""Live restores of the golden CRIU 4.2 dumps, as root, with real processes (the test is a child subreaper)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from criu_core.context import RestoreContext
from criu_core.errors import CriuError, MissingPluginError, PidInUse
from criu_core.images.framing import read_image, write_image
from criu_core.images.vma import (
    VMA_AREA_REGULAR,
    VMA_AREA_VVAR,
)
from criu_core.options import Options
from criu_core.plugins import PluginHost
from criu_core.ptrace import make_seed
from criu_core.restore import run
from criu_core.restore_plan import load_plan

GOLDEN = Path("/work/shared/fixtures/criu-4.2")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not GOLDEN.exists(), reason="golden CRIU 4.2 dumps are not available"),
]


def _need_free(pid: int) -> None:
    if os.path.exists(f"/proc/{pid}"):
        pytest.skip(f"PID {pid} is taken on this machine ({Path(f'/proc/{pid}/comm').read_text().strip()})")


def _copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(GOLDEN / name, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def _ctx(images: Path, **opts: object) -> RestoreContext:
    return RestoreContext(options=Options(**opts), host=PluginHost(load_entry_points=False), images_dir=images,
                          log=logging.getLogger("criu"))


def _digest(d: Path) -> dict[str, str]:
    """The images' hashes; stats-restore is CRIU's report of the restore, written into the work dir."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())
            if p.name != "stats-restore"}


def _stat_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def _settles(pid: int, state: str = "S", timeout: float = 3.0) -> bool:
    """Whether the task reaches ``state`` (a just-resumed task may still be running for an instant)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _stat_state(pid) == state:
            return True
        time.sleep(0.02)
    return _stat_state(pid) == state


def _tracer(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("TracerPid:"):
            return int(line.split()[1])
    return -1


def _maps(pid: int) -> list[tuple[int, int, str, str]]:
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        s, e = (int(x, 16) for x in parts[0].split("-"))
        out.append((s, e, parts[1], parts[5] if len(parts) > 5 else ""))
    return out


def _prot_str(prot: int, flags: int) -> str:
    return ("r" if prot & 1 else "-") + ("w" if prot & 2 else "-") + ("x" if prot & 4 else "-") + \
        ("s" if flags & 1 else "p")


def _assert_maps_match(maps: list[tuple[int, int, str, str]], task: object) -> None:
    vmas = [v.entry for v in task.vmas]  # type: ignore[attr-defined]
    for e in vmas:
        if e.status & VMA_AREA_VVAR:  # vvar + vvar_vclock, one VMA in CRIU's image
            covered = [m for m in maps if m[3] in ("[vvar]", "[vvar_vclock]")]
            assert (min(m[0] for m in covered), max(m[1] for m in covered)) == (e.start, e.end)
            continue
        if not e.status & VMA_AREA_REGULAR:
            continue  # vsyscall
        inside = [m for m in maps if m[0] >= e.start and m[1] <= e.end]
        assert inside and inside[0][0] == e.start and inside[-1][1] == e.end, f"VMA {e.start:#x} missing"
        assert all(m[2] == _prot_str(e.prot, e.flags) for m in inside), (hex(e.start), inside)
    for m in maps:
        assert any(e.start <= m[0] and m[1] <= e.end for e in vmas), f"extra mapping {m}"


def _status(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)


def _assert_task_state(pid: int, images: Path) -> None:
    """umask, cwd, comm, signal dispositions and mask, rlimits: as the image says (rlimits within our own)."""
    import resource

    plan = load_plan(images)
    task = plan.root
    tc = task.core.tc
    st = _status(pid)
    assert int(st["Umask"], 8) == task.fs.umask
    assert os.readlink(f"/proc/{pid}/cwd") == plan.file(task.fs.cwd_id).reg.name
    assert st["Name"] == tc.comm
    sigs = [s for s in range(1, 65) if s not in (9, 19)]
    ign = sum(1 << (s - 1) for s, sa in zip(sigs, tc.sigactions) if sa.sigaction == 1)
    cgt = sum(1 << (s - 1) for s, sa in zip(sigs, tc.sigactions) if sa.sigaction > 1)
    assert (int(st["SigIgn"], 16), int(st["SigCgt"], 16), int(st["SigBlk"], 16)) == (ign, cgt, tc.blk_sigset)
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    for res, (rl, line) in enumerate(zip(tc.rlimits.rlimits, limits)):
        ours = resource.getrlimit(res)[1]
        ours = (1 << 64) - 1 if ours == resource.RLIM_INFINITY else ours
        if rl.max > ours:
            continue  # cannot be raised without CAP_SYS_RESOURCE (a warning says so)
        soft, hard = (x if x != "unlimited" else str((1 << 64) - 1) for x in line[26:].split()[:2])
        assert (int(soft), int(hard)) == (rl.cur, rl.max), line


@pytest.fixture
def golden_cwd() -> None:
    # the golden dumps ran in /tmp/golden; CRIU, too, needs the cwd to exist on restore
    os.makedirs("/tmp/golden", exist_ok=True)


def test_sleep_restores(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    before = _digest(images)
    ctx = _ctx(images, restore_detached=True)
    assert run(ctx) == 0
    restored.append(31001)
    assert ctx.root_pid == 31001
    assert _tracer(31001) == 0
    time.sleep(0.2)
    assert _settles(31001)
    assert os.readlink("/proc/31001/exe") == "/usr/bin/sleep"
    assert {fd: os.readlink(f"/proc/31001/fd/{fd}") for fd in os.listdir("/proc/31001/fd")} == \
        {"0": "/dev/null", "1": "/dev/null", "2": "/dev/null"}
    assert Path("/proc/31001/comm").read_text().strip() == "sleep"
    # every VMA of the image is in maps at the same address with the same protection, and nothing else is
    maps = _maps(31001)
    _assert_maps_match(maps, load_plan(images).root)
    assert [m for m in maps if m[3] == "[stack]"]
    _assert_task_state(31001, images)
    assert _digest(images) == before  # images untouched
    stats = read_image(images / "stats-restore").messages[0].restore
    assert stats.pages_restored == 27 and stats.restore_time > 0
    # the restored sleep keeps sleeping
    time.sleep(0.5)
    assert _settles(31001)


def test_pycounter_continues(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    _need_free(31002)
    os.makedirs("/tmp/criu-golden", exist_ok=True)
    log = Path("/tmp/criu-golden/counter.log")
    log.write_text("")
    images = _copy("pycounter", tmp_path)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31002)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(log.read_text().split()) < 5:
        time.sleep(0.1)
    values = [int(x) for x in log.read_text().split()]
    assert len(values) >= 5, values
    # 23 bytes were written before the dump ("0\n" .. "10\n"): the count goes on at 11, one step at a time
    assert values[0] == 11 and values == list(range(11, 11 + len(values)))
    _assert_maps_match(_maps(31002), load_plan(images).root)
    _assert_task_state(31002, images)
    # the clocks continue from the dump (time namespace with the offsets of timens-0.img)
    assert os.readlink("/proc/31002/ns/time") != os.readlink("/proc/self/ns/time")
    assert _stat_state(31002) in "SR"


def test_pid_in_use(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    _need_free(31001)
    occupier = make_seed(31001)  # a stopped traced child holding the PID
    try:
        images = _copy("sleep", tmp_path)
        restored.append(31001)  # killed at teardown even if the restore wrongly succeeds
        with pytest.raises(PidInUse) as err:
            run(_ctx(images, restore_detached=True))
        assert str(err.value) == "PID 31001 is in use"
        assert "\n" not in str(err.value)
    finally:
        os.kill(occupier.tid, signal.SIGKILL)
        os.waitpid(occupier.tid, 0x40000000)


def test_failure_mid_restore_kills_the_seed(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """The exe is gone: the seed exists by then, and must be killed; the images stay as they were."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    img = read_image(images / "files.img")
    for ent in img.entries:
        if ent.msg.HasField("reg") and ent.msg.reg.name == "/usr/bin/sleep":
            ent.msg.reg.name = "/usr/bin/no-such-sleep"
    write_image(images / "files.img", "FILES", img.entries)
    before = _digest(images)
    restored.append(31001)  # killed at teardown even if the restore wrongly succeeds
    with pytest.raises(CriuError) as err:
        run(_ctx(images, restore_detached=True))
    assert str(err.value) == "Can't open exe /usr/bin/no-such-sleep for task 31001: ENOENT: No such file or directory"
    assert not os.path.exists("/proc/31001")
    assert _digest(images) == before


def test_corrupt_image_touches_nothing(tmp_path: Path, restored: list[int]) -> None:
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    with open(images / "mm-31001.img", "r+b") as f:
        f.truncate(100)
    restored.append(31001)  # killed at teardown even if the restore wrongly succeeds
    with pytest.raises(CriuError) as err:
        run(_ctx(images, restore_detached=True))
    assert "mm-31001.img" in str(err.value) and "\n" not in str(err.value)
    assert not os.path.exists("/proc/31001")


def test_missing_plugin_stops_before_anything(tmp_path: Path, restored: list[int]) -> None:
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    img = read_image(images / "inventory.img")
    img.entries[0].msg.plugins_entry.plugins.append("amdgpu_plugin")
    write_image(images / "inventory.img", "INVENTORY", img.entries)
    restored.append(31001)  # killed at teardown even if the restore wrongly succeeds
    with pytest.raises(MissingPluginError):
        run(_ctx(images, restore_detached=True))
    assert not os.path.exists("/proc/31001")


def test_pidfile(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    pidfile = tmp_path / "restored.pid"
    assert run(_ctx(images, restore_detached=True, pidfile=str(pidfile))) == 0
    restored.append(31001)
    assert pidfile.read_text() == "31001"


def test_not_detached_returns_the_exit_status(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """Without -d, run() waits for the task: killed by SIGTERM it reports 128 + 15, as a shell would."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    result: list[object] = []

    def restore() -> None:  # ptrace requests must all come from one thread: the whole run lives here
        try:
            result.append(run(_ctx(images)))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result.append(exc)

    t = threading.Thread(target=restore)
    t.start()
    restored.append(31001)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not result:
        try:
            if os.readlink("/proc/31001/exe") == "/usr/bin/sleep" and _tracer(31001) == 0:
                break
        except OSError:
            pass
        time.sleep(0.02)
    assert not result, result
    time.sleep(0.2)
    assert t.is_alive()  # still waiting for the task
    os.kill(31001, signal.SIGTERM)
    t.join(10)
    assert result == [128 + signal.SIGTERM]


def test_leave_stopped_registers_match_the_image(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """--leave-stopped: the task stops before running one instruction; its registers and XSAVE area are
    exactly the image's (gpregs, x87/SSE, AVX-512 opmask/ZMM components at the CPU's offsets)."""
    import struct

    from criu_core.builtin.regs_restore import xstate_offsets
    from criu_core.ptrace import seize_tree

    _need_free(31001)
    images = _copy("sleep", tmp_path)
    assert run(_ctx(images, restore_detached=True, leave_stopped=True)) == 0
    restored.append(31001)
    deadline = time.monotonic() + 5
    while _stat_state(31001) != "T" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _stat_state(31001) == "T"
    core = load_plan(images).root.core
    gp, fp = core.thread_info.gpregs, core.thread_info.fpregs
    tree = seize_tree(31001)
    try:
        task = tree.leader(31001)
        regs = task.get_regs()
        xs = task.get_xstate()
    finally:
        tree.release()
    assert (regs.rip, regs.rsp, regs.rax, regs.rbx, regs.fs_base, regs.eflags & 0xFFF) == \
        (gp.ip, gp.sp, gp.ax, gp.bx, gp.fs_base, gp.flags & 0xFFF)
    assert struct.unpack_from("<64I", xs, 160) == tuple(fp.xmm_space)
    assert struct.unpack_from("<I", xs, 24)[0] == fp.mxcsr
    bv = struct.unpack_from("<Q", xs, 512)[0]
    offsets = xstate_offsets(xs)
    for bit, values, fmt in ((5, fp.xsave.opmask_reg, "Q"), (7, fp.xsave.hi16_zmm, "Q")):
        if fp.xsave.xstate_bv >> bit & 1 and bit in offsets:
            assert bv >> bit & 1
            off, _size = offsets[bit]
            assert struct.unpack_from(f"<{len(values)}{fmt}", xs, off) == tuple(values)
    os.kill(31001, signal.SIGCONT)


def _ctxt_switches(pid: int, tid: int) -> int:
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return -1


def test_threads_come_back_with_their_tids(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """The python3 with three sleeping daemon threads: one process, 4 threads, the same TIDs, all looping."""
    for tid in (31020, 31021, 31022, 31023):
        _need_free(tid)
    images = _copy("threads", tmp_path)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31020)
    assert sorted(int(t) for t in os.listdir("/proc/31020/task")) == [31020, 31021, 31022, 31023]
    _assert_maps_match(_maps(31020), load_plan(images).root)
    before = {tid: _ctxt_switches(31020, tid) for tid in (31021, 31022, 31023)}
    time.sleep(1.0)
    after = {tid: _ctxt_switches(31020, tid) for tid in (31021, 31022, 31023)}
    assert all(after[t] > before[t] for t in before), (before, after)  # each thread keeps waking up
    assert sorted(int(t) for t in os.listdir("/proc/31020/task")) == [31020, 31021, 31022, 31023]
    assert _tracer(31020) == 0 and _stat_state(31020) in "SR"


def _ids(pid: int) -> tuple[int, int, int]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[2]), int(fields[3])  # ppid, pgrp, session


def test_tree_shell_with_two_children(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """sh -c 'sleep & sleep & wait': same PIDs, same parent, same session and group; the shell still waits
    for its children (it reaps one that is killed)."""
    for pid in (31010, 31011, 31012):
        _need_free(pid)
    images = _copy("tree", tmp_path)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.extend([31011, 31012, 31010])
    assert _ids(31010)[1:] == (31010, 31010)
    assert _ids(31011) == (31010, 31010, 31010) and _ids(31012) == (31010, 31010, 31010)
    assert os.readlink("/proc/31010/exe") == "/usr/bin/dash"
    assert os.readlink("/proc/31011/exe") == "/usr/bin/sleep"
    os.kill(31011, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists("/proc/31011") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists("/proc/31011")  # reaped by the restored shell, not left a zombie
    assert _settles(31010) and _settles(31012)


def test_unsupported_descriptor_fails_cleanly(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """A descriptor of a type no loaded plugin restores (a tun file here): one error line naming the file, and
    the seed made by then is gone."""
    _need_free(31030)
    images = _copy("ipc", tmp_path)
    img = read_image(images / "files.img")
    next(e.msg for e in img.entries if e.msg.id == 16).type = 15  # TUNF
    write_image(images / "files.img", "FILES", img.entries)
    restored.append(31030)  # killed at teardown even if the restore wrongly succeeds
    with pytest.raises(CriuError) as err:
        run(_ctx(images, restore_detached=True))
    assert str(err.value) == "no plugin can restore file id 16 (type 15) of task 31030"
    assert not os.path.exists("/proc/31030")


def test_external_session_needs_shell_job(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """A task whose session leader is outside the images: refused without --shell-job (before any seed), and
    with it the task joins the restorer's session, leading its own process group."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    img = read_image(images / "pstree.img")
    img.entries[0].msg.sid = os.getsid(0)
    write_image(images / "pstree.img", "PSTREE", img.entries)
    restored.append(31001)  # killed at teardown even if the restore wrongly succeeds
    with pytest.raises(CriuError, match="--shell-job"):
        run(_ctx(images, restore_detached=True))
    assert not os.path.exists("/proc/31001")
    assert run(_ctx(images, restore_detached=True, shell_job=True)) == 0
    restored.append(31001)
    assert _ids(31001)[1:] == (31001, os.getsid(0))


def _edit_core(images: Path, pid: int, edit: object) -> None:
    img = read_image(images / f"core-{pid}.img")
    edit(img.entries[0].msg)  # type: ignore[operator]
    write_image(images / f"core-{pid}.img", "CORE", img.entries)


def test_pending_signals_and_mask(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """Blocked SIGUSR1 queued for the thread and SIGUSR2 queued for the process stay pending after restore."""
    import struct

    _need_free(31001)
    images = _copy("sleep", tmp_path)

    def edit(core: object) -> None:
        core.tc.blk_sigset = (1 << 9) | (1 << 11)  # type: ignore[attr-defined]
        # siginfo_t: si_signo, si_errno, si_code (SI_QUEUE = -1), then si_pid, si_uid, si_value
        core.thread_core.signals_p.signals.add().siginfo = struct.pack("<iiiiIQ", 10, 0, -1, 1, 0, 7).ljust(128, b"\0")  # type: ignore[attr-defined]
        core.tc.signals_s.signals.add().siginfo = struct.pack("<iiiiIQ", 12, 0, -1, 1, 0, 8).ljust(128, b"\0")  # type: ignore[attr-defined]

    _edit_core(images, 31001, edit)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    st = _status(31001)
    assert int(st["SigBlk"], 16) == (1 << 9) | (1 << 11)
    assert int(st["SigPnd"], 16) == 1 << 9 and int(st["ShdPnd"], 16) == 1 << 11
    assert _settles(31001)


def test_credentials_differing_from_root(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """A task dumped as nobody with no capabilities comes back as nobody, after every step that needs root."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)

    def edit(core: object) -> None:
        c = core.thread_core.creds  # type: ignore[attr-defined]
        c.uid = c.gid = c.euid = c.egid = c.suid = c.sgid = c.fsuid = c.fsgid = 65534
        for field in (c.cap_inh, c.cap_prm, c.cap_eff, c.cap_amb):
            field[:] = [0, 0]
        del c.groups[:]

    _edit_core(images, 31001, edit)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    st = _status(31001)
    assert st["Uid"].split() == ["65534"] * 4 and st["Gid"].split() == ["65534"] * 4
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    assert int(st["CapBnd"], 16) == (511 << 32) | 0xFEFFFFFF  # the dumped bounding set (no CAP_SYS_RESOURCE)
    assert _settles(31001)


def test_posix_timers_keep_their_ids(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """POSIX timers come back with the dumped ids, clocks, signals and remaining times."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)

    def edit(core: object) -> None:
        posix = core.tc.timers.posix  # type: ignore[attr-defined]
        posix.add(it_id=3, clock_id=1, si_signo=10, it_sigev_notify=1, sival_ptr=0, overrun=0,
                  isec=0, insec=0, vsec=1000, vnsec=0)  # SIGEV_NONE on CLOCK_MONOTONIC
        posix.add(it_id=7, clock_id=0, si_signo=12, it_sigev_notify=0, sival_ptr=0x1234, overrun=0,
                  isec=500, insec=0, vsec=900, vnsec=5)  # SIGEV_SIGNAL SIGUSR2 on CLOCK_REALTIME

    _edit_core(images, 31001, edit)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    text = Path("/proc/31001/timers").read_text()
    assert "ID: 3\n" in text and "ID: 7\n" in text
    assert "signal: 12/0000000000001234" in text and "ClockID: 1" in text and "ClockID: 0" in text
    assert _settles(31001)


def test_vma_advice_lock_and_personality(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """madvise bits (vma.madv), MAP_LOCKED and the personality are applied."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    img = read_image(images / "mm-31001.img")
    heap = next(v for v in img.entries[0].msg.vmas if v.status & 0x20)
    heap.madv |= (1 << 16) | (1 << 14)  # MADV_DONTDUMP, MADV_HUGEPAGE
    heap.flags |= 0x2000  # MAP_LOCKED
    write_image(images / "mm-31001.img", "MM", img.entries)
    _edit_core(images, 31001, lambda core: setattr(core.tc, "personality", 0x0040000))  # ADDR_NO_RANDOMIZE
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    smaps = Path("/proc/31001/smaps").read_text().split("\n")
    start = next(i for i, line in enumerate(smaps) if line.startswith(f"{heap.start:x}-"))
    flags = next(line for line in smaps[start:] if line.startswith("VmFlags:")).split()[1:]
    assert {"dd", "hg", "lo"} <= set(flags)
    assert Path("/proc/31001/personality").read_text().strip() == "00040000"


def test_ipc_pipes_sockets_eventfd(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """The pipe with 20 unread bytes, the unix stream pair with 18 queued bytes, the datagram pair with two
    queued datagrams (boundaries kept) and the eventfd with count 7 are back."""
    import socket

    from criu_core.sys.proc import pidfd_getfd

    _need_free(31030)
    images = _copy("ipc", tmp_path)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31030)
    plan = load_plan(images)
    by_id = {f.file_id: f.fd for f in plan.root.fds}
    pidfd = os.pidfd_open(31030)
    try:
        def grab(file_id: int) -> int:
            return pidfd_getfd(pidfd, by_id[file_id])

        rd = os.open(f"/proc/31030/fd/{by_id[10]}", os.O_RDONLY | os.O_NONBLOCK)
        assert os.read(rd, 100) == b"pipe-bytes-in-flight"
        os.close(rd)
        stream = socket.socket(fileno=grab(13))
        assert stream.recv(100, socket.MSG_DONTWAIT) == b"unix-stream-queued"
        stream.close()
        dgram = socket.socket(fileno=grab(15))
        assert dgram.type == socket.SOCK_DGRAM
        assert [dgram.recv(100, socket.MSG_DONTWAIT), dgram.recv(100, socket.MSG_DONTWAIT)] == [b"dgram-1", b"dgram-2"]
        dgram.close()
        assert "eventfd-count: 7" in " ".join(Path(f"/proc/31030/fdinfo/{by_id[16]}").read_text().split())
    finally:
        os.close(pidfd)
    assert _settles(31030)


def test_stale_pidfile_fails_cleanly(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    pidfile = tmp_path / "restored.pid"
    pidfile.write_text("1")
    restored.append(31001)  # killed at teardown even if the restore wrongly succeeds
    with pytest.raises(CriuError, match=f"Can't write pidfile {pidfile}: File exists"):
        run(_ctx(images, restore_detached=True, pidfile=str(pidfile)))
    assert not os.path.exists("/proc/31001")


def test_shared_anonymous_memory(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """Two VMAs of one shared anonymous object (VMA_ANON_SHARED, content in pagemap-shmem-ID.img) map the same
    memory again: its content is back, a write through one shows through the other, and maps still says
    /dev/zero (deleted) rw-s."""
    from criu_core.images.pagemap import make_entry, make_head

    _need_free(31001)
    images = _copy("sleep", tmp_path)
    img = read_image(images / "mm-31001.img")
    mm = img.entries[0].msg
    a, b, page = 0x7F0000000000, 0x7F0000010000, 4096
    new = [{"start": a, "end": a + 3 * page, "pgoff": 0}, {"start": b, "end": b + 2 * page, "pgoff": page}]
    vmas = list(mm.vmas) + [type(mm.vmas[0])(shmid=777, prot=3, flags=0x21, status=0x101, fd=-1, **v) for v in new]
    del mm.vmas[:]
    mm.vmas.extend(sorted(vmas, key=lambda v: v.start))
    write_image(images / "mm-31001.img", "MM", img.entries)
    write_image(images / "pagemap-shmem-777.img", "SHMEM_PAGEMAP", [make_head(2), make_entry(0, 2)])
    (images / "pages-2.img").write_bytes(b"A" * page + b"B" * page)
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    with open("/proc/31001/mem", "r+b", buffering=0) as mem:
        def read(addr: int) -> bytes:
            mem.seek(addr)
            return mem.read(page)

        assert read(a) == b"A" * page and read(a + page) == b"B" * page and read(a + 2 * page) == bytes(page)
        assert read(b) == b"B" * page
        mem.seek(a + 2 * page)
        mem.write(b"C" * page)
        assert read(b + page) == b"C" * page  # one object behind both mappings
    maps = [m for m in _maps(31001) if m[0] in (a, b)]
    assert [(m[2], m[3]) for m in maps] == [("rw-s", "/dev/zero (deleted)")] * 2


def test_inherit_fd_replaces_a_file(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """--inherit-fd fd[N]:dev/null: the task's /dev/null descriptors become the restorer's fd N (a pipe here),
    as runc hands its stdio to CRIU."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    r, w = os.pipe()
    try:
        assert run(_ctx(images, restore_detached=True, inherit_fd=[f"fd[{w}]:dev/null"])) == 0
        restored.append(31001)
        ino = os.fstat(w).st_ino
        assert {os.readlink(f"/proc/31001/fd/{fd}") for fd in (0, 1, 2)} == {f"pipe:[{ino}]"}
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(CriuError, match="expected fd"):
        run(_ctx(images, restore_detached=True, inherit_fd=["3:dev/null"]))


def test_memfd_descriptor_and_mapping(tmp_path: Path, restored: list[int], golden_cwd: None) -> None:
    """A memfd (memfd.img + MEMFD file + pagemap-shmem content) open as fd 7 at position 5 and mapped shared:
    name, content, position, mode and seals are back, and the mapping and the descriptor share the memory."""
    import fcntl

    from criu_core.images.messages import new
    from criu_core.images.pagemap import make_entry, make_head

    _need_free(31001)
    images = _copy("sleep", tmp_path)
    page, addr = 4096, 0x7F0000000000
    write_image(images / "memfd.img", "MEMFD_INODE", [new(
        "memfd.memfd_inode_entry", name="criu-test", uid=0, gid=0, size=2 * page, shmid=555, seals=1,
        inode_id=1, mode=0o100640)])
    files = read_image(images / "files.img")
    fown = new("fown.fown_entry", uid=0, euid=0, signum=0, pid_type=0, pid=0)
    files.entries.append(type(files.entries[0])(new(
        "fdinfo.file_entry", type=18, id=100,
        memfd=new("memfd.memfd_file_entry", id=100, flags=os.O_RDWR | os.O_LARGEFILE, pos=5, fown=fown,
                  inode_id=1))))
    write_image(images / "files.img", "FILES", files.entries)
    fdinfo = read_image(images / "fdinfo-2.img")
    fdinfo.entries.append(type(fdinfo.entries[0])(new("fdinfo.fdinfo_entry", id=100, flags=0, type=18, fd=7)))
    write_image(images / "fdinfo-2.img", "FDINFO", fdinfo.entries)
    mmimg = read_image(images / "mm-31001.img")
    mm = mmimg.entries[0].msg
    vmas = [*mm.vmas, type(mm.vmas[0])(start=addr, end=addr + 2 * page, pgoff=0, shmid=100, prot=3, flags=1,
                                        status=0x1 | 0x80 | 0x4000, fd=-1)]
    del mm.vmas[:]
    mm.vmas.extend(sorted(vmas, key=lambda v: v.start))
    write_image(images / "mm-31001.img", "MM", mmimg.entries)
    write_image(images / "pagemap-shmem-555.img", "SHMEM_PAGEMAP", [make_head(2), make_entry(0, 1)])
    (images / "pages-2.img").write_bytes(b"M" * page)

    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    assert os.readlink("/proc/31001/fd/7") == "/memfd:criu-test (deleted)"
    assert "pos: 5" in " ".join(Path("/proc/31001/fdinfo/7").read_text().split())
    maps = [m for m in _maps(31001) if m[0] == addr]
    assert [(m[2], m[3]) for m in maps] == [("rw-s", "/memfd:criu-test (deleted)")]
    fd = os.open("/proc/31001/fd/7", os.O_RDWR)
    try:
        assert os.pread(fd, page, 0) == b"M" * page and os.pread(fd, page, page) == bytes(page)
        assert os.fstat(fd).st_mode & 0o777 == 0o640
        assert fcntl.fcntl(fd, 1034) == 1  # F_GET_SEALS: F_SEAL_SEAL
        with open("/proc/31001/mem", "r+b", buffering=0) as mem:
            mem.seek(addr + page)
            mem.write(b"shared")
        assert os.pread(fd, 6, page) == b"shared"
    finally:
        os.close(fd)


_SIBLING_RESTORER = """
import sys
from criu_core.context import RestoreContext
from criu_core.options import Options
from criu_core.plugins import PluginHost
from criu_core.restore import run
ctx = RestoreContext(options=Options(restore_detached=True, restore_sibling=True),
                     host=PluginHost(load_entry_points=False), images_dir=sys.argv[1])
sys.exit(run(ctx))
"""


@pytest.mark.parametrize(("name", "pid"), [("sleep", 31001), ("threads", 31020), ("tree", 31010)])
def test_restore_sibling_makes_the_task_our_child(tmp_path: Path, restored: list[int], golden_cwd: None,
                                                  name: str, pid: int) -> None:
    """--restore-sibling (what runc asks for): the restored root is a child of the restorer's parent, which
    can wait for it; the restorer itself has exited."""
    import subprocess
    import sys

    plan = load_plan(GOLDEN / name)
    for t in plan.tasks:
        for tid in t.tids:
            _need_free(tid)
    images = _copy(name, tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", _SIBLING_RESTORER, str(images)], env=env, capture_output=True,
                          check=False,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    restored.extend(t.pid for t in reversed(plan.tasks))
    assert _ids(pid)[0] == os.getpid()
    assert all(_ids(t.pid)[0] == pid for t in plan.tasks[1:])
    assert sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")) == sorted(plan.root.tids)
    assert _tracer(pid) == 0 and _settles(pid)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)  # ours to reap
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.parametrize("name_taken", [False, True], ids=["deleted", "replaced"])
def test_deleted_files_come_back_from_ghosts(tmp_path: Path, restored: list[int], golden_cwd: None,
                                            name_taken: bool) -> None:
    """Remapped files (remap-fpath.img + ghost-file-ID.img): an open deleted file and a deleted, replaced exe.

    The exe entry is remapped to a ghost holding /usr/bin/sleep's bytes under a name that does not exist any
    more, as after an upgrade; the task's exe, its mappings of it and a deleted data file at position 3 all
    show their own names "(deleted)", and no ghost is left behind. If a new file has the exe's name now, the
    old exe comes back under its ghost's name."""
    from criu_core.images.messages import new

    _need_free(31001)
    gdir = tmp_path / "gone"
    gdir.mkdir()
    images = _copy("sleep", tmp_path)
    files = read_image(images / "files.img")
    fown = new("fown.fown_entry", uid=0, euid=0, signum=0, pid_type=0, pid=0)
    exe = next(e.msg for e in files.entries if e.msg.id == 1)
    exe.reg.name = str(gdir / "sleep")
    files.entries.append(type(files.entries[0])(new(
        "fdinfo.file_entry", type=1, id=200,
        reg=new("regfile.reg_file_entry", id=200, flags=os.O_RDONLY, pos=3, fown=fown, name=str(gdir / "victim"),
                mode=0o100600, size=11))))
    write_image(images / "files.img", "FILES", files.entries)
    fdinfo = read_image(images / "fdinfo-2.img")
    fdinfo.entries.append(type(fdinfo.entries[0])(new("fdinfo.fdinfo_entry", id=200, flags=0, type=1, fd=5)))
    write_image(images / "fdinfo-2.img", "FDINFO", fdinfo.entries)
    write_image(images / "remap-fpath.img", "REMAP_FPATH", [
        new("remap_file_path.remap_file_path_entry", orig_id=1, remap_id=0x301, remap_type=1),
        new("remap_file_path.remap_file_path_entry", orig_id=200, remap_id=0x302, remap_type=1)])
    write_image(images / "ghost-file-301.img", "GHOST_FILE",
                [(new("ghost_file.ghost_file_entry", uid=0, gid=0, mode=0o100755, size=43888),
                  Path("/usr/bin/sleep").read_bytes())])
    write_image(images / "ghost-file-302.img", "GHOST_FILE",
                [(new("ghost_file.ghost_file_entry", uid=0, gid=0, mode=0o100600, size=11), b"ghost-data!")])

    if name_taken:
        (gdir / "sleep").write_text("a newer version")
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    exe_name = f"{gdir}/sleep.cr.301.ghost (deleted)" if name_taken else f"{gdir}/sleep (deleted)"
    assert os.readlink("/proc/31001/exe") == exe_name
    assert {m[3] for m in _maps(31001) if "gone" in m[3]} == {exe_name}
    assert os.readlink("/proc/31001/fd/5") == f"{gdir}/victim (deleted)"
    assert "pos: 3" in " ".join(Path("/proc/31001/fdinfo/5").read_text().split())
    fd = os.open("/proc/31001/fd/5", os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"ghost-data!"
    finally:
        os.close(fd)
    assert [p.name for p in gdir.iterdir()] == (["sleep"] if name_taken else [])  # no ghost is left
    assert _settles(31001)


def test_oom_score_adj(tmp_path: Path, restored: list[int], golden_cwd: None, caplog: pytest.LogCaptureFixture) -> None:
    """A raised oom_score_adj is restored; a lowered one needs CAP_SYS_RESOURCE and only warns without it."""
    _need_free(31001)
    images = _copy("sleep", tmp_path)
    _edit_core(images, 31001, lambda core: setattr(core.tc, "oom_score_adj", 300))
    assert run(_ctx(images, restore_detached=True)) == 0
    restored.append(31001)
    assert Path("/proc/31001/oom_score_adj").read_text().strip() == "300"
    os.kill(31001, signal.SIGKILL)
    os.waitpid(31001, 0)
    _edit_core(images, 31001, lambda core: setattr(core.tc, "oom_score_adj", -300))
    with caplog.at_level(logging.WARNING, logger="criu"):
        assert run(_ctx(images, restore_detached=True)) == 0
    value = int(Path("/proc/31001/oom_score_adj").read_text())
    assert value == -300 or any("oom_score_adj -300 not restored" in r.message for r in caplog.records)


def test_pid_above_pid_max(tmp_path: Path, restored: list[int]) -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    if pid_max >= 4194303:
        pytest.skip("pid_max is at its limit")
    images = _copy("sleep", tmp_path)
    img = read_image(images / "pstree.img")
    e = img.entries[0].msg
    e.pid = e.pgid = e.sid = pid_max + 5
    e.threads[:] = [pid_max + 5]
    write_image(images / "pstree.img", "PSTREE", img.entries)
    for old, new in (("core", "core"), ("ids", "ids"), ("mm", "mm"), ("pagemap", "pagemap"), ("fs", "fs")):
        (images / f"{old}-31001.img").rename(images / f"{new}-{pid_max + 5}.img")
    with pytest.raises(CriuError, match=f"PID {pid_max + 5} is not below this machine's pid_max"):
        run(_ctx(images, restore_detached=True))
