"""Issue 4: threads and process trees (same TIDs and PIDs, parents, per-thread state)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _tids(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def _tree(pid: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = sorted(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        out[p] = kids
        todo.extend(kids)
    return out


@pytest.mark.parametrize("n", [1, 2, 16, 200])
def test_threads(zdtm, n: int) -> None:
    t = zdtm.start("threads", str(n))
    tids = _tids(t.pid)
    assert len(tids) == n
    zdtm.cycle(t)
    assert _tids(t.pid) == tids, "the threads did not come back with their TIDs"
    t.check()


@pytest.mark.parametrize("n", [3, 100])
def test_tree(zdtm, n: int) -> None:
    t = zdtm.start("tree", str(n))
    tree = _tree(t.pid)
    assert sum(len(k) for k in tree.values()) == n - 1
    zdtm.cycle(t)
    assert _tree(t.pid) == tree, "the tree did not come back with its PIDs and parents"
    t.check()


@pytest.mark.parametrize(
    "mode", ["zombie", "zombiesig", "zombiegrp", "orphangrp", "waitpid", "pgroups", "forker", "spawner"]
)
def test_sessions(zdtm, mode: str) -> None:
    """A zombie child (exited; killed by a signal; leader of a group a live sibling is in), a process in a group whose leader is gone, a parent in waitpid across the restore, a session with two process groups, a process
    that forks while it is being seized, and one that creates threads while it is being seized."""
    t = zdtm.start("sessions", mode)
    tree = _tree(t.pid) if mode not in ("forker", "spawner") else None
    churn = "it creates and ends threads all the time"
    window = "pthread_create blocks every signal around clone(): the dump may catch the leader in that window"
    spawner = {"threads": churn, "status.Threads": churn, "status.SigBlk": window}
    zdtm.cycle(t, allow=spawner if mode == "spawner" else None)
    if tree is not None:
        assert _tree(t.pid) == tree, "the tree did not come back with its PIDs and parents"
    t.check()


def test_shared_anon_memory(zdtm) -> None:
    """MAP_SHARED|MAP_ANONYMOUS memory between a parent and its child stays shared after restore."""
    t = zdtm.start("sessions", "shmem")
    zdtm.cycle(t)
    t.check()


def _cow_pss_ratio(pid: int) -> float:
    """Pss/Rss of the task's 64 MiB anonymous VMA: about 0.5 while its pages are shared with one other task."""
    rss = pss = 0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            inside = end - start == 64 << 20
        elif inside and line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif inside and line.startswith("Pss:"):
            pss = int(line.split()[1])
    assert rss, f"no resident 64 MiB VMA in task {pid}"
    return pss / rss


def test_cow_sharing_kept(zdtm) -> None:
    """64 MiB written before fork() and shared copy-on-write: both still read it after restore, and the pages
    are still shared between them (CRIU's restore compares the child's pages with the inherited ones and keeps
    them shared), not two private copies."""
    t = zdtm.start("sessions", "cow")
    (child,) = _tree(t.pid)[t.pid]
    before = (_cow_pss_ratio(t.pid), _cow_pss_ratio(child))
    assert max(before) < 0.6, before
    zdtm.cycle(t)
    after = (_cow_pss_ratio(t.pid), _cow_pss_ratio(child))
    assert max(after) < 0.6, f"Pss/Rss of the COW region after restore {after} (before {before}): not shared"
    t.check()


PIPELINE = (
    "python3 -S -u -c 'import time\ni = 0\nwhile True:\n    print(i)\n    i += 1\n    time.sleep(0.01)' | cat | cat"
)


def test_shell_pipeline(zdtm) -> None:
    """`sh -c 'a | b | c'`: three processes joined by pipes under a shell; the numbers keep flowing one by one
    (nothing in flight lost or repeated)."""
    import re

    import zdtmlib

    t = zdtm.start_process_argv(["/bin/sh", "-c", PIPELINE], "pipeline")

    def numbers() -> list[int]:
        return [int(x) for x in re.findall(r"^(\d+)$", t.out.read_text(), re.MULTILINE)]

    zdtmlib.wait_for(lambda: len(numbers()) >= 5 and len(_tree(t.pid)) == 4, 10, "the pipeline to flow")
    tree = _tree(t.pid)
    zdtm.cycle(t, allow={"fds.1": "the pipeline writes all the time", "fds.0": "stdin"})
    assert _tree(t.pid) == tree
    n = len(numbers())
    zdtmlib.wait_for(lambda: len(numbers()) >= n + 10, 10, "the restored pipeline to flow")
    nums = numbers()
    assert nums == list(range(len(nums))), "numbers lost or repeated across the restore: " + str(nums[-30:])


@pytest.mark.parametrize(("target", "arg"), [("threads", "16"), ("tree", "10")])
def test_leave_running_tree(zdtm, engines, target: str, arg: str) -> None:
    """--leave-running on a threaded process and on a tree: every thread and process runs on unchanged."""
    import zdtmlib

    t = zdtm.start(target, arg)
    pids = [t.pid, *zdtmlib.descendants(t.pid)]
    before = {pid: zdtmlib.snapshot(pid) for pid in pids}
    d = zdtm.dump(t, zdtm.images(), "--leave-running")
    assert d.rc == 0, d.explain()
    for pid in pids:
        diffs = zdtmlib.compare(before[pid], zdtmlib.snapshot(pid))
        assert not diffs, f"--leave-running changed task {pid}:\n" + "\n".join(diffs)
    t.check()


def test_failed_tree_dump_releases_all(zdtm, engines) -> None:
    """One process of a 10-process tree holds a descriptor the dump refuses: the dump fails in one line and
    every process is released running and unchanged (seizing is all-or-nothing)."""
    import zdtmlib

    t = zdtm.start("tree", "10", "inotify")
    pids = [t.pid, *zdtmlib.descendants(t.pid)]
    before = {pid: zdtmlib.snapshot(pid) for pid in pids}
    d = zdtm.dump(t, zdtm.images())
    assert d.rc != 0, "the dump of a tree holding an inotify fd succeeded:\n" + d.explain()
    for pid in pids:
        assert zdtmlib.pid_alive(pid), f"task {pid} of the tree died in the failed dump"
        diffs = zdtmlib.compare(before[pid], zdtmlib.snapshot(pid))
        assert not diffs, f"the failed dump changed task {pid}:\n" + "\n".join(diffs)
    assert "Traceback" not in d.stderr and len(d.stderr.strip().splitlines()) == 1, d.explain()
    t.check()


def test_clone_files_fs_shared(zdtm) -> None:
    """A child made with clone(CLONE_FILES|CLONE_FS) still shares its parent's descriptor table and fs info
    after restore (kcmp, and a chdir and an open by the parent seen by the child)."""
    t = zdtm.start("sessions", "clonefiles")
    tree = _tree(t.pid)
    zdtm.cycle(t)
    assert _tree(t.pid) == tree
    t.check()


def test_exit_signal(zdtm) -> None:
    """A child made by clone(..., SIGUSR1) keeps its exit signal (in criu-core's own image criu-core-PID.img, written
    for that task only; CRIU's core image is not extended and CRIU forks every task with SIGCHLD): after restore
    its stat field 38 is 10 and its end is reported to the parent by SIGUSR1 alone (the target checks both, and
    that it is still a __WCLONE child)."""
    import zdtmlib

    from criu_core.images import ImageDir

    t = zdtm.start("clones", "exitsig")
    (child,) = _tree(t.pid)[t.pid]
    images = zdtm.images()
    tree = _tree(t.pid)
    d = zdtm.dump(t, images)
    assert d.rc == 0, d.explain()
    zdtm.forget(t)
    zdtmlib.wait_all_gone([child])
    img = ImageDir(images)
    assert img.read_one("criu-core", child).exit_signal == 10
    assert not img.exists("criu-core", t.pid)  # the root ends with SIGCHLD: nothing beyond CRIU's images
    assert [f.name for f in images.glob("criu-core-*.img")] == [f"criu-core-{child}.img"]
    r = zdtm.restore(images)
    assert r.rc == 0, r.explain()
    t.restored = True
    assert _tree(t.pid) == tree
    t.check()


def _image_ids(images: Path, pid: int) -> tuple[int, int]:
    """(vm_id, pages_id of its pagemap) of task ``pid`` in a dump."""
    from criu_core.images import ImageDir

    img = ImageDir(images)
    return img.read_one("ids", pid).vm_id, img.read_all("pagemap", pid)[0].pages_id


def test_clone_vm_shared(zdtm) -> None:
    """A child made by clone(CLONE_VM) without CLONE_THREAD, with its own stack: its memory is dumped once
    (same vm_id, its pagemap names the parent's pages image), and after restore both processes still share one
    address space (kcmp KCMP_VM; a counter the child writes moves under the parent's eyes, a request the parent
    writes is answered, heap data written before the dump is there); the sharer's own child, a plain fork, still
    has a private copy of that mm."""
    import zdtmlib

    t = zdtm.start("clones", "vmshare")
    tree = _tree(t.pid)
    (child,) = tree[t.pid]
    images = zdtm.images()
    d = zdtm.dump(t, images)
    assert d.rc == 0, d.explain()
    zdtm.forget(t)
    zdtmlib.wait_all_gone(tree)
    (grandchild,) = tree[child]
    assert _image_ids(images, t.pid) == _image_ids(images, child), "the shared mm was not dumped once"
    assert _image_ids(images, grandchild)[1] != _image_ids(images, child)[1], "the grandchild's own mm is missing"
    assert len(list(images.glob("pages-*.img"))) == 2, sorted(p.name for p in images.iterdir())
    r = zdtm.restore(images)
    assert r.rc == 0, r.explain()
    t.restored = True
    assert _tree(t.pid) == tree
    t.check()


def test_clone_vm_sighand_shared(zdtm) -> None:
    """A child made by clone(CLONE_VM | CLONE_SIGHAND) without CLONE_THREAD: after restore it still shares its
    parent's signal handlers (kcmp KCMP_SIGHAND; a handler the parent installs is the child's at once) as well
    as its memory."""
    import zdtmlib

    t = zdtm.start("clones", "vmsighand")
    tree = _tree(t.pid)
    (child,) = tree[t.pid]
    images = zdtm.images()
    d = zdtm.dump(t, images)
    assert d.rc == 0, d.explain()
    zdtm.forget(t)
    zdtmlib.wait_all_gone(tree)
    from criu_core.images import ImageDir

    ids = ImageDir(images)
    assert ids.read_one("ids", child).sighand_id == ids.read_one("ids", t.pid).sighand_id, "sharing not dumped"
    r = zdtm.restore(images)
    assert r.rc == 0, r.explain()
    t.restored = True
    assert _tree(t.pid) == tree
    t.check()


def test_clone_vm_siblings(zdtm) -> None:
    """Two siblings sharing an address space their parent does not have (X makes Y with
    clone(CLONE_VM | CLONE_PARENT)): the mm is dumped once, and the restore makes Y the same way, from X with
    CLONE_PARENT, so both are the root's children and still share one mm (kcmp), which is not the root's."""
    import zdtmlib

    t = zdtm.start("clones", "vmsiblings")
    tree = _tree(t.pid)
    x, y = tree[t.pid]
    images = zdtm.images()
    d = zdtm.dump(t, images)
    assert d.rc == 0, d.explain()
    zdtm.forget(t)
    zdtmlib.wait_all_gone(tree)
    assert _image_ids(images, x) == _image_ids(images, y), "the shared mm was not dumped once"
    r = zdtm.restore(images)
    assert r.rc == 0, r.explain()
    t.restored = True
    assert _tree(t.pid) == tree
    t.check()


@pytest.mark.parametrize("opt", ["pidfile", "restore-sibling"])
def test_tree_restore_options(zdtm, opt: str) -> None:
    """--pidfile names the root of a restored tree; --restore-sibling makes the root a child of criu-py's
    parent (here the harness) as CRIU does for runc; the tree comes back whole either way."""
    t = zdtm.start("tree", "3")
    tree = _tree(t.pid)
    pidfile = zdtm.tmp / "root.pid"
    zdtm.cycle(t, restore_args=["--pidfile", str(pidfile)] if opt == "pidfile" else ["--restore-sibling"])
    assert _tree(t.pid) == tree
    if opt == "pidfile":
        assert pidfile.read_text().strip() == str(t.pid)
    else:
        ppid = int(Path(f"/proc/{t.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert ppid == os.getpid(), f"the restored root's parent is {ppid}, not criu-py's parent {os.getpid()}"
    t.check()


def _ids(pid: int) -> tuple[int, int, int]:
    """(ppid, pgrp, session) from /proc/PID/stat."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[1]), int(f[2]), int(f[3])


@pytest.mark.parametrize("mode", ["oldsid", "rootsid", "deadsid", "deepsid", "leadersid", "lateleader"])
def test_session_left_behind(zdtm, mode: str) -> None:
    """A parent forks a child, then calls setsid(): the child stays in the parent's earlier session (the
    root's, or with --shell-job the outside one), which is neither its own nor its parent's. After restore
    every pid, ppid, pgid and sid is as before and the processes check themselves and each other. deadsid:
    two processes reparented to the root (a subreaper) are left in a session whose leader is gone (a helper
    with its PID makes it, as CRIU does). deepsid: a grandchild left two generations below its session's
    leader (both tasks between called setsid after forking). leadersid: two processes reparented to the root
    are in a session whose leader is alive elsewhere in the tree (a helper forked by the leader makes them, as
    CRIU does). Only the root must lead its session to be dumped without --shell-job, as with CRIU. lateleader (not a session case): a member of a group whose leader
    lives in another subtree, forked after it on restore, joins the group once the leader has made it."""
    shell = mode == "rootsid"
    t = zdtm.start("sessions", mode, **({"setsid": False} if shell else {}))
    tree = _tree(t.pid)
    ids = {pid: _ids(pid) for pid in [t.pid, *(k for kids in tree.values() for k in kids)]}
    if mode == "oldsid":
        (p,) = tree[t.pid]
        (c,) = tree[p]
        assert ids[p][1:] == (p, p) and ids[c] == (p, t.pid, t.pid), ids
    # rootsid: the root leads its session, so the dump needs no --shell-job (as CRIU); its child stays in
    # criu-py's session, which only --shell-job allows on restore
    zdtm.cycle(t, restore_args=["--shell-job"] if shell else [])
    assert _tree(t.pid) == tree, "the tree did not come back with its PIDs and parents"
    after = {pid: _ids(pid) for pid in ids}
    if shell:  # the root's parent and the outside session are criu-py's (--shell-job), as with CRIU
        after[t.pid], ids[t.pid] = after[t.pid][1:], ids[t.pid][1:]
    assert after == ids, f"ids (ppid, pgrp, sid) before {ids}, after {after}"
    t.check()
