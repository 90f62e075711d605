"""``[anon:NAME]`` through a real restore: images that carry a VMA name (criu-core-PID.img) restore on this
machine's kernel. With CONFIG_ANON_VMA_NAME the restored VMA shows the name; without it (this machine: prctl
gives EINVAL) the restore warns once and the task comes back whole and unnamed. test_memory's
test_vmas[anon_name] covers the dump side on a kernel that can name VMAs (it skips here)."""

from __future__ import annotations

import ctypes
import errno
import mmap
from pathlib import Path

from criu_core.images import ImageDir
from criu_core.images.criu_core_task import task_entry
from criu_core.images.vma import VMA_ANON_PRIVATE, VMA_AREA_REGULAR

PR_SET_VMA, PR_SET_VMA_ANON_NAME = 0x53564D41, 0


def _kernel_names_vmas() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    m = mmap.mmap(-1, mmap.PAGESIZE)
    try:
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        ok = (
            libc.prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, ctypes.c_ulong(addr), ctypes.c_ulong(mmap.PAGESIZE), b"probe")
            == 0
        )
        err = ctypes.get_errno()
    finally:
        try:
            m.close()
        except BufferError:
            pass
    assert ok or err == errno.EINVAL, f"PR_SET_VMA_ANON_NAME: unexpected errno {err}"
    return ok


def test_named_vma_restores(zdtm, engines) -> None:
    t = zdtm.start("vmas", "anon")
    images = zdtm.images()
    d = zdtm.dump(t, images)
    assert d.rc == 0, d.explain()
    zdtm.forget(t)

    imgs = ImageDir(images)
    mm = imgs.read_one("mm", t.pid)
    _, entries = imgs.read_pagemap(t.pid)
    paged = {e.vaddr for e in entries}
    plain = [
        v
        for v in mm.vmas
        if v.status == VMA_AREA_REGULAR | VMA_ANON_PRIVATE
        and not v.flags & 0x100
        and any(v.start <= a < v.end for a in paged)
    ]
    assert plain, "no anonymous VMA with pages in the dump"
    target = max(plain, key=lambda v: v.end - v.start)
    assert not imgs.exists("criu-core", t.pid), "an unnamed task needs no criu-core image"
    imgs.write_one("criu-core", task_entry(vma_names=[(target.start, "zdtm named region")]), t.pid)

    r = zdtm.restore(images)
    assert r.rc == 0, r.explain()
    t.restored = True
    maps = Path(f"/proc/{t.pid}/maps").read_text()
    line = next(x for x in maps.splitlines() if x.startswith(f"{target.start:x}-"))
    warned = [x for x in (r.log + r.stderr).splitlines() if "CONFIG_ANON_VMA_NAME" in x]
    if _kernel_names_vmas():
        assert line.endswith("[anon:zdtm named region]"), line
        assert not warned, warned
    else:
        assert "[anon:" not in line, line
        assert len(set(warned)) == 1, r.explain()  # once, however many named VMAs
    t.check()
