"""procfs parsers on a recorded /proc tree (tests/lowlevel/data/proc, made by record/record_proc.py)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from criu_core.errors import NoSuchProcess
from criu_core.procfs import (
    RLIM_INFINITY,
    ProcFS,
    parse_fdinfo,
    parse_maps_line,
    parse_mountinfo,
    parse_stat,
    parse_status,
)

ROOT = Path(__file__).parent / "data" / "proc"
META = json.loads((ROOT / "meta.json").read_text())
PID = META["pid"]
FDS = META["fds"]
TMP = META["tmpdir"]


@pytest.fixture
def procfs() -> ProcFS:
    return ProcFS(str(ROOT))


def _bit(sig: int) -> int:
    return 1 << (sig - 1)


def test_stat_comm_with_paren_and_space(procfs: ProcFS) -> None:
    st = procfs.stat(PID)
    assert st.pid == PID
    assert st.comm == "a) b"
    assert st.fields["exit_signal"] == signal.SIGCHLD
    assert st.start_brk < st.fields["arg_start"] < st.arg_end <= st.env_start < st.env_end
    assert st.fields["num_threads"] == 1


def test_stat_edge_cases() -> None:
    st = parse_stat("42 ((x) y) )) S 1 42 42 0 -1 0")
    assert st.comm == "(x) y) )"
    assert st.state == "S" and st.ppid == 1 and st.pgrp == 42
    assert "exit_signal" not in st.fields  # truncated line: missing fields are absent


def test_status_signals_caps_ids(procfs: ProcFS) -> None:
    s = procfs.status(PID)
    assert s.name == "a) b"
    assert s.tgid == PID and s.pid == PID and s.ppid > 0
    assert s.nspid == (PID,)
    assert s.sigblk == _bit(signal.SIGUSR1) | _bit(signal.SIGTERM)
    assert s.sigpnd | s.shdpnd == _bit(signal.SIGUSR1)  # kill(getpid()) queues to the process
    assert s.sigign & _bit(signal.SIGPIPE)
    assert s.umask == 0o022 or s.umask is not None
    assert s.uids == (0, 0, 0, 0) and s.gids == (0, 0, 0, 0)
    assert s.cap_eff == 0x1FFFEFFFFFF or s.cap_eff != 0
    assert s.cap_bnd != 0 and s.cap_amb == 0
    assert s.seccomp == 0 and s.no_new_privs == 0
    assert s.threads == 1


def test_status_optional_fields() -> None:
    s = parse_status("Name:\tx\nNSpid:\t10\t1\nNSsid:\t5\t1\nNSpgid:\t7\t1\nSigBlk:\t0000000000000001\n")
    assert s.nspid == (10, 1) and s.nssid == (5, 1) and s.nspgid == (7, 1)
    assert s.umask is None and s.sigblk == 1 and s.seccomp_filters == 0


def test_maps_names_deleted_spaces(procfs: ProcFS) -> None:
    maps = procfs.maps(PID)
    by_name = {m.name: m for m in maps}
    deleted = by_name[f"{TMP}/deleted file"]
    assert deleted.deleted and deleted.shared and deleted.size == 8192
    spaces = by_name[f"{TMP}/with spaces (x) .bin"]
    assert not spaces.deleted and spaces.perms == "r--p"
    assert "[vdso]" in by_name and "[vvar]" in by_name and "[heap]" in by_name and "[stack]" in by_name
    vsys = by_name["[vsyscall]"]
    assert vsys.start == 0xFFFFFFFFFF600000
    anon = [m for m in maps if m.name == ""]
    assert anon and all(m.inode == 0 for m in anon)
    assert maps == sorted(maps, key=lambda m: m.start)


def test_smaps_matches_maps_and_has_vmflags(procfs: ProcFS) -> None:
    maps = procfs.maps(PID)
    smaps = procfs.smaps(PID)
    assert [(m.start, m.end, m.name, m.deleted) for m in maps] == [(m.start, m.end, m.name, m.deleted) for m in smaps]
    for m in smaps:
        assert m.stats["Size"] * 1024 == m.size
        assert m.vmflags and "rd" in m.vmflags or m.perms[0] != "r"
    stack = next(m for m in smaps if m.name == "[stack]")
    assert "gd" in stack.vmflags
    noreserve = [m for m in smaps if "nr" in m.vmflags]
    assert any(m.size == 1 << 20 and m.stats["Rss"] >= 4 for m in noreserve)
    shared = next(m for m in smaps if m.deleted)
    assert "sh" in shared.vmflags


def test_maps_line_escaped_newline() -> None:
    m = parse_maps_line("1000-2000 rw-p 00000000 08:01 77   /tmp/a\\012b (deleted)\n")
    assert m.name == "/tmp/a\nb" and m.deleted and m.dev_major_minor == (8, 1)


def test_fdinfo_regular(procfs: ProcFS) -> None:
    fi = procfs.fdinfo(PID, FDS["spaces"])
    assert fi.pos == 123
    assert fi.flags & 0o2002 == 0o2002  # O_RDWR | O_APPEND
    assert fi.mnt_id > 0 and fi.ino


def test_fdinfo_eventfd(procfs: ProcFS) -> None:
    fi = procfs.fdinfo(PID, FDS["eventfd"])
    assert fi.eventfd_count == 5
    assert fi.flags & 0o4000  # O_NONBLOCK


def test_fdinfo_epoll(procfs: ProcFS) -> None:
    fi = procfs.fdinfo(PID, FDS["epoll"])
    assert len(fi.epoll_tfds) == 1
    tfd = fi.epoll_tfds[0]
    assert tfd["tfd"] == FDS["eventfd"]
    assert tfd["events"] == 0x1D  # EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP
    assert tfd["data"] == 0x1234
    assert fi.flags & 0o2000000  # O_CLOEXEC


def test_fdinfo_inotify(procfs: ProcFS) -> None:
    fi = procfs.fdinfo(PID, FDS["inotify"])
    assert len(fi.inotify_wds) == 1
    wd = fi.inotify_wds[0]
    assert wd["wd"] == 1 and wd["mask"] == 0x300  # IN_CREATE|IN_DELETE
    assert wd["ino"] > 0


def test_fdinfo_signalfd(procfs: ProcFS) -> None:
    fi = procfs.fdinfo(PID, FDS["signalfd"])
    assert fi.sigmask == _bit(signal.SIGUSR1) | _bit(signal.SIGTERM)


def test_fdinfo_timerfd(procfs: ProcFS) -> None:
    fi = procfs.fdinfo(PID, FDS["timerfd"])
    assert fi.timerfd_clockid == 1  # CLOCK_MONOTONIC
    assert fi.timerfd_ticks == 0
    assert fi.timerfd_settime_flags == 0
    assert fi.timerfd_it_interval == (7, 0)
    assert fi.timerfd_it_value is not None and 99 <= fi.timerfd_it_value[0] <= 100


def test_fdinfo_new_kernel_lines_are_kept() -> None:
    fi = parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t3\nino:\t9\nsomething-new:\tabc\n")
    assert fi.extra == {"something-new": "abc"} and fi.ino == 9


def test_limits(procfs: ProcFS) -> None:
    lim = procfs.limits(PID)
    assert len(lim) == 16
    assert lim[0] == (RLIM_INFINITY, RLIM_INFINITY)  # cpu
    assert lim[7][0] > 0  # nofile


def test_auxv(procfs: ProcFS) -> None:
    aux = dict(procfs.auxv(PID))
    assert aux[6] == 4096  # AT_PAGESZ
    maps = procfs.maps(PID)
    vdso = next(m for m in maps if m.name == "[vdso]")
    assert aux[33] == vdso.start  # AT_SYSINFO_EHDR


def test_tids_children_mountinfo(procfs: ProcFS) -> None:
    assert procfs.tids(PID) == [PID]
    assert procfs.children(PID) == []
    mi = procfs.mountinfo(PID)
    assert any(m.mount_point == "/" for m in mi)
    assert any(m.fstype == "proc" for m in mi)


def test_mountinfo_escapes() -> None:
    (m,) = parse_mountinfo("36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue")
    assert m.mount_point == "/mnt two" and m.optional == ("master:1",) and m.fstype == "ext3"
    assert m.source == "/dev/root" and m.super_options == "rw,errors=continue"


def test_missing_process_is_no_such_process(procfs: ProcFS) -> None:
    with pytest.raises(NoSuchProcess):
        procfs.status(999999)
