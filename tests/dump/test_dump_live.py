"""Live dumps of real C targets into CRIU 4.2 images, checked through the image layer (and Debian's crit)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from criu_core.dumping.task import SIGACTION_SIGNALS
from criu_core.errors import UnsupportedResource
from criu_core.images.imagedir import ImageDir
from criu_core.images.pagemap import nr_pages, page_offsets
from criu_core.sys.proc import pidfd_getfd, pidfd_open

CRIT = "/usr/bin/crit"
PAGE = 4096


def _n(line: str) -> int:
    m = re.search(r"n=(\d+)", line)
    return int(m.group(1)) if m else -1


def _pages(img: ImageDir, pid: int) -> dict[int, bytes]:
    """vaddr → page content of every dumped page of ``pid``."""
    head, entries = img.read_pagemap(pid)
    data = Path(img.path_for("pages", head.pages_id)).read_bytes()
    out = {}
    for entry, off in page_offsets(entries):
        assert off is not None
        for i in range(nr_pages(entry)):
            out[entry.vaddr + i * PAGE] = data[off + i * PAGE : off + (i + 1) * PAGE]
    assert sum(nr_pages(e) for e in entries) * PAGE == len(data)
    return out


def test_dump_counter_images(spawn, dump) -> None:
    t = spawn("counter")
    t.wait_output(lambda ls: len(ls) >= 3)
    result, d = dump(t.pid)
    # default: the task is killed after a successful dump
    t.proc.wait(timeout=5)
    img = ImageDir(d)
    names = {name for name, _, _ in img.list()}
    for must in (
        "inventory.img",
        "pstree.img",
        f"core-{t.pid}.img",
        f"ids-{t.pid}.img",
        f"mm-{t.pid}.img",
        f"pagemap-{t.pid}.img",
        "pages-1.img",
        f"fs-{t.pid}.img",
        "fdinfo-2.img",
        "files.img",
        "seccomp.img",
        "timens-0.img",
        "stats-dump",
    ):
        assert must in names, must
    inv = img.read_one("inventory")
    assert inv.img_version == 2 and inv.fdinfo_per_id and inv.root_cg_set == 1
    (ps,) = img.read_all("pstree")
    assert (ps.pid, ps.ppid, ps.pgid, ps.sid, list(ps.threads)) == (t.pid, 0, t.pid, t.pid, [t.pid])
    core = img.read_one("core", t.pid)
    assert core.mtype == 1 and core.tc.comm == "counter" and core.tc.task_state == 1
    assert len(core.tc.sigactions) == 62 and len(core.tc.rlimits.rlimits) == 16
    usr1 = core.tc.sigactions[SIGACTION_SIGNALS.index(signal.SIGUSR1)]
    assert usr1.sigaction != 0 and usr1.flags & 0x10000000  # SA_RESTART
    regs = core.thread_info.gpregs
    if regs.orig_ax == 230:  # in clock_nanosleep: finished (0) or interrupted (restart block → -EINTR)
        assert regs.ax in (0, (1 << 64) - 4)
    assert core.thread_info.clear_tid_addr and core.thread_core.futex_rla_len == 24
    assert core.thread_core.rseq_entry.rseq_abi_size >= 32
    assert core.thread_core.sas.ss_flags == 2  # SS_DISABLE
    assert len(core.thread_info.fpregs.xmm_space) == 64 and len(core.thread_info.tls) == 3
    mm = img.read_one("mm", t.pid)
    assert mm.exe_file_id == 1 and mm.mm_brk >= mm.mm_start_brk
    names_by_status = {v.status for v in mm.vmas}
    assert 0x209 in names_by_status and 0x221 in names_by_status and 0x204 in names_by_status  # vdso heap vsyscall
    files = {f.id: f for f in img.read_all("files")}
    assert files[1].reg.name.endswith("/counter")
    fdinfo = {f.fd: f for f in img.read_all("fdinfo", 2)}
    assert sorted(fdinfo) == [0, 1, 2] and fdinfo[1].id == fdinfo[2].id  # 2>&1 shares the description
    log = files[fdinfo[1].id].reg
    assert log.name == str(t.log) and log.pos == t.log.stat().st_size and log.flags & 0o3 == 1
    assert result.pages_written == sum(nr_pages(e) for e in img.read_pagemap(t.pid)[1])
    stats = img.read_one("stats", "dump")
    assert stats.dump.pages_written == result.pages_written
    # an ordinary task: only CRIU's files, none of criu-core's own (criu-core-PID.img, which crit could not read)
    assert not [n for n in names if n.startswith("criu-core-")], names
    if os.path.exists(CRIT) and os.path.exists("/usr/bin/python3"):
        for name in names - {"pages-1.img"}:  # CRIU's files
            subprocess.run(["/usr/bin/python3", CRIT, "decode", "-i", str(d / name), "-o", os.devnull], check=True)


def test_dump_leave_running(spawn, dump) -> None:
    t = spawn("counter")
    t.wait_output(lambda ls: len(ls) >= 3)
    dump(t.pid, leave_running=True)
    n0 = _n(t.lines()[-1])
    lines = t.wait_output(lambda ls: _n(ls[-1]) >= n0 + 5)
    ns = [_n(x) for x in lines]
    assert all(b == a + 1 for a, b in itertools.pairwise(ns))
    os.kill(t.pid, signal.SIGUSR1)  # the handler is intact
    t.wait_output(lambda ls: "usr1=1" in ls[-1])


def test_dump_memory_patterns_and_sparse_area(spawn, dump) -> None:
    t = spawn("memtest")
    (line,) = t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))
    buf, big, none = (int(x, 16) for x in line.split()[1:])
    start = time.monotonic()
    result, d = dump(t.pid)
    assert time.monotonic() - start < 10  # 1 TiB of NORESERVE space is scanned, not read
    pages = _pages(ImageDir(d), t.pid)
    for i in range(0, 8 << 20, PAGE):
        want = struct.pack("<Q", (i // PAGE) * 2654435761 + 7)
        page = pages[buf + i]  # aligned_alloc: page aligned
        assert page[:8] == want and page[-8:] == want
    assert pages[big] == b"\xa1" * PAGE
    assert pages[big + (1 << 39)] == b"\xb2" * PAGE
    assert pages[big + (1 << 40) - PAGE] == b"\xc3" * PAGE
    assert big + (1 << 30) not in pages  # the zero page is not dumped
    assert pages[none] == b"\xd4" * PAGE  # PROT_NONE: read through /proc/PID/mem
    big_pages = [a for a in pages if big <= a < big + (1 << 40)]
    assert len(big_pages) == 3
    assert result.pages_written == len(pages)


def test_dump_threads(spawn, dump) -> None:
    t = spawn("threads", "3")
    t.wait_output(lambda ls: len(ls) >= 2)
    tids = sorted(int(x) for x in os.listdir(f"/proc/{t.pid}/task"))
    _, d = dump(t.pid)
    img = ImageDir(d)
    (ps,) = img.read_all("pstree")
    assert sorted(ps.threads) == tids and ps.threads[0] == t.pid
    fs_bases = set()
    for tid in tids:
        core = img.read_one("core", tid)
        assert core.HasField("tc") == (tid == t.pid)
        assert core.thread_core.comm == "threads"
        fs_bases.add(core.thread_info.gpregs.fs_base)
    assert len(fs_bases) == 4  # each thread its own TLS


def test_dump_tree(spawn, dump) -> None:
    t = spawn("forker")
    t.wait_output(lambda ls: ls == ["ready"])
    time.sleep(0.05)
    _, d = dump(t.pid)
    img = ImageDir(d)
    ps = img.read_all("pstree")
    assert len(ps) == 5 and ps[0].pid == t.pid and ps[0].ppid == 0
    pids = {p.pid for p in ps}
    for p in ps[1:]:
        assert p.ppid in pids and p.sid == t.pid and p.pgid == t.pid
        ids = img.read_one("ids", p.pid)
        assert ids.vm_id != img.read_one("ids", t.pid).vm_id
    # one pages file per process
    assert len({img.read_pagemap(p.pid)[0].pages_id for p in ps}) == 5


def test_unsupported_fd_fails_and_leaves_task_running(spawn, dump, tmp_path: Path) -> None:
    sock = tmp_path / "s.py"
    sock.write_text(
        "import socket, time, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "n = 0\n"
        "while True:\n"
        "    print(f'n={n}', flush=True); n += 1; time.sleep(0.02)\n"
    )
    py = shutil.which("python3") or "/usr/bin/python3"
    from criu_core.sys.proc import set_child_subreaper

    set_child_subreaper(True)
    log = tmp_path / "py.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [py, "-S", str(sock)], stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(log.read_text().splitlines()) < 3:
            time.sleep(0.02)
        with pytest.raises(UnsupportedResource, match="Can't dump file"):
            dump(proc.pid)
        n0 = _n(log.read_text().splitlines()[-1])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _n(log.read_text().splitlines()[-1]) < n0 + 5:
            time.sleep(0.02)
        ns = [_n(x) for x in log.read_text().splitlines()]
        assert ns[-1] >= n0 + 5 and all(b == a + 1 for a, b in itertools.pairwise(ns))
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert "TracerPid:\t0" in status
    finally:
        proc.kill()
        proc.wait()


def test_dump_fd_kinds(spawn, dump) -> None:
    t = spawn("fds")
    (line,) = t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))
    r, w, efd, ep, sfd, tfd = (int(x) for x in line.split()[1:])
    _, d = dump(t.pid, leave_running=True)
    img = ImageDir(d)
    files = {f.id: f for f in img.read_all("files")}
    fdinfo = {f.fd: f for f in img.read_all("fdinfo", 2)}
    rd, wr = files[fdinfo[r].id], files[fdinfo[w].id]
    assert rd.type == wr.type == 2 and rd.pipe.pipe_id == wr.pipe.pipe_id  # PIPE, one pipe
    assert rd.pipe.flags & 3 == 0 and wr.pipe.flags & 3 == 1
    (pd,) = img.read("pipes-data").entries
    assert pd.msg.pipe_id == rd.pipe.pipe_id and pd.extra == b"pipe-bytes-in-flight\n" and pd.msg.bytes == 21
    assert files[fdinfo[efd].id].efd.counter == 7
    ep_entry = files[fdinfo[ep].id].epfd
    assert [(x.tfd, x.events & 1, x.data) for x in ep_entry.tfd] == [(efd, 1, 0xFEED)]  # kernel adds ERR|HUP
    assert files[fdinfo[sfd].id].sgfd.sigmask == (1 << (signal.SIGUSR2 - 1)) | (1 << (signal.SIGTERM - 1))
    timer = files[fdinfo[tfd].id].tfd
    assert timer.clockid == 1 and timer.isec == 7 and 90 <= timer.vsec <= 100
    # the dump took a copy of the pipe's data: it is still there
    assert t.alive()
    with open(f"/proc/{t.pid}/fd/{r}", "rb", buffering=0) as f:
        os.set_blocking(f.fileno(), False)
        assert f.read(100) == b"pipe-bytes-in-flight\n"


def test_dump_stopped_task(spawn, dump) -> None:
    t = spawn("counter")
    t.wait_output(lambda ls: len(ls) >= 2)
    os.kill(t.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 2
    while "T (stopped)" not in Path(f"/proc/{t.pid}/status").read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    _, d = dump(t.pid)
    core = ImageDir(d).read_one("core", t.pid)
    assert core.tc.task_state == 3 and core.tc.stop_signo == signal.SIGSTOP


def test_dump_unix_sockets(dump, tmp_path: Path) -> None:
    py = shutil.which("python3") or "/usr/bin/python3"
    log = tmp_path / "sk.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [py, "-S", str(Path(__file__).parent / "sockets_target.py")],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not log.read_text().startswith("ready"):
            time.sleep(0.02)
        _r, _w, s1, s2, d1, d2, ls = (int(x) for x in log.read_text().split()[1:8])
        _, d = dump(proc.pid, leave_running=True)
        img = ImageDir(d)
        files = {f.id: f for f in img.read_all("files")}
        fdinfo = {f.fd: f for f in img.read_all("fdinfo", 2)}
        usk = {fd: files[fdinfo[fd].id].usk for fd in (s1, s2, d1, d2, ls)}
        assert usk[s1].peer == usk[s2].ino and usk[s2].peer == usk[s1].ino
        assert usk[s1].type == 1 and usk[d1].type == 2 and usk[s1].state == 1
        assert usk[ls].state == 10 and usk[ls].backlog == 7 and usk[ls].name.startswith(b"\0criu-py-test-")
        assert usk[s1].opts.so_sndbuf > 0 and usk[s1].ns_id == img.read_one("ids", proc.pid).net_ns_id
        queues = [(e.msg.id_for, e.extra) for e in img.read("sk-queues").entries]
        assert (fdinfo[s2].id, b"unix-stream-queued") in queues
        assert [x for i, x in queues if i == fdinfo[d2].id] == [b"dgram-1", b"dgram-2"]
        assert all(e.msg.length == len(e.extra) for e in img.read("sk-queues").entries)
        # the queues are intact after the dump
        pidfd = pidfd_open(proc.pid)
        try:
            for fd, want in ((s2, b"unix-stream-queued"), (d2, b"dgram-1")):
                with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sk:
                    assert sk.recv(100, socket.MSG_PEEK | socket.MSG_DONTWAIT) == want
                    assert sk.getsockopt(socket.SOL_SOCKET, 42) == -1  # SO_PEEK_OFF put back
        finally:
            os.close(pidfd)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_dump_pending_signals_and_seccomp(spawn, dump) -> None:
    t = spawn("pending")
    t.wait_output(lambda ls: ls == ["ready"])
    _, d = dump(t.pid)
    img = ImageDir(d)
    core = img.read_one("core", t.pid)
    shared = [int.from_bytes(s.siginfo[:4], "little") for s in core.tc.signals_s.signals]
    private = [s.siginfo for s in core.thread_core.signals_p.signals]
    assert shared == [signal.SIGUSR1]
    assert [int.from_bytes(s[:4], "little") for s in private] == [signal.SIGRTMIN] * 2
    assert [int.from_bytes(s[24:28], "little") for s in private] == [111, 222]  # si_value survives
    assert core.tc.blk_sigset == (1 << (signal.SIGUSR1 - 1)) | (1 << (signal.SIGRTMIN - 1))
    assert core.thread_core.seccomp_mode == 2 and core.thread_core.creds.no_new_privs == 1
    filters = img.read_one("seccomp").seccomp_filters
    assert len(filters) == 1 and len(filters[core.thread_core.seccomp_filter].filter) == 4 * 8


def test_dump_timers(spawn, dump) -> None:
    t = spawn("timers")
    (line,) = t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))
    id1, id2 = (int(x) for x in line.split()[1:])
    _, d = dump(t.pid)
    timers = ImageDir(d).read_one("core", t.pid).tc.timers
    assert timers.real.isec == 3 and 4 <= timers.real.vsec <= 5
    posix = {p.it_id: p for p in timers.posix}
    p1, p2 = posix[id1], posix[id2]
    assert (p1.clock_id, p1.si_signo, p1.it_sigev_notify, p1.sival_ptr) == (1, signal.SIGRTMIN + 1, 0, 0x1234)
    assert p1.isec == 7 and 40 <= p1.vsec <= 50
    assert (p2.clock_id, p2.si_signo, p2.it_sigev_notify, p2.notify_thread_id) == (0, signal.SIGUSR2, 4, t.pid)
    assert 90 <= p2.vsec <= 100 and p2.isec == 0


def test_dump_unlinked_file_as_ghost(spawn, dump, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    t = spawn("deleted", str(victim))
    (line,) = t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))
    fd = int(line.split()[1])
    want = b"".join(b"line %04d of the ghost\n" % i for i in range(3000))
    _, d = dump(t.pid)
    img = ImageDir(d)
    files = {f.id: f for f in img.read_all("files")}
    fid = next(f.id for f in img.read_all("fdinfo", 2) if f.fd == fd)
    reg = files[fid].reg
    assert reg.name == str(victim) and reg.pos == 5 and reg.size == len(want)
    remaps = {r.orig_id: r for r in img.read_all("remap-fpath")}
    assert remaps[fid].remap_type == 1  # GHOST
    ghost = img.read("ghost-file", remaps[fid].remap_id).entries[0]
    assert ghost.extra == want and ghost.msg.size == len(want) and ghost.msg.mode & 0o777 == 0o640
    # the mapping has its own (read-only) file entry and its own ghost with the same content
    vmas = img.read_one("mm", t.pid).vmas
    mapped = [v for v in vmas if v.shmid in files and files[v.shmid].reg.name == str(victim)]
    assert mapped and mapped[0].status & 0x40 and mapped[0].shmid != fid
    other = img.read("ghost-file", remaps[mapped[0].shmid].remap_id).entries[0]
    assert other.extra == want
    assert len(remaps) == 2 and len([n for n, _, _ in img.list() if n.startswith("ghost-file")]) == 2


def test_ghost_limit(spawn, dump, tmp_path: Path) -> None:
    t = spawn("deleted", str(tmp_path / "big.txt"))
    t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))
    with pytest.raises(UnsupportedResource, match="ghost limit"):
        dump(t.pid, ghost_limit=1000)
    assert t.alive()


def _shmem_pages(img: ImageDir, shmid: int) -> dict[int, bytes]:
    head, entries = img.read_pagemap(shmid, shmem=True)
    data = Path(img.path_for("pages", head.pages_id)).read_bytes()
    out = {}
    for entry, off in page_offsets(entries):
        for i in range(nr_pages(entry)):
            out[entry.vaddr + i * PAGE] = data[off + i * PAGE : off + (i + 1) * PAGE]
    return out


def test_dump_memfd_and_shared_anonymous(spawn, dump) -> None:
    t = spawn("shmem")
    (line,) = t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))
    fd, shm, mfd_map = int(line.split()[1]), int(line.split()[2], 16), int(line.split()[3], 16)
    _, d = dump(t.pid)
    img = ImageDir(d)
    files = {f.id: f for f in img.read_all("files")}
    mfd = files[next(f.id for f in img.read_all("fdinfo", 2) if f.fd == fd)]
    assert mfd.type == 18 and mfd.memfd.pos == 5 and mfd.memfd.flags & 3 == 2
    (inode,) = img.read_all("memfd")
    assert inode.name == "testmemfd" and inode.size == 8 * PAGE and inode.inode_id == mfd.memfd.inode_id
    assert inode.seals == 2  # F_SEAL_SHRINK
    pages = _shmem_pages(img, inode.shmid)
    assert pages == {0: b"a" * PAGE, PAGE: b"b" * PAGE, 6 * PAGE: b"g" * PAGE}  # the hole is not dumped
    vmas = {v.start: v for v in img.read_one("mm", t.pid).vmas}
    mv = vmas[mfd_map]
    assert mv.status == 0x1 | 0x80 | 0x4000 and files[mv.shmid].memfd.inode_id == inode.inode_id
    sv = vmas[shm]
    assert sv.status == 0x1 | 0x100 and sv.flags == 0x21 and sv.end - sv.start == 16 * PAGE
    assert _shmem_pages(img, sv.shmid) == {2 * PAGE: b"x" * PAGE, 9 * PAGE: b"y" * PAGE}
    # no private copies of shared pages in the task's own pagemap
    task_pages = _pages(img, t.pid)
    assert shm not in task_pages and mfd_map not in task_pages
