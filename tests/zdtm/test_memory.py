"""Memory: every VMA kind of issue 3 survives with its address, protections, flags, name and content."""

from __future__ import annotations

import pytest

MODES = ["anon", "file_private", "file_shared", "stack", "heap", "guard", "madvise", "mlock", "anon_name"]


@pytest.mark.parametrize("mode", MODES)
def test_vmas(zdtm, mode: str) -> None:
    t = zdtm.start("vmas", mode)
    zdtm.cycle(t)
    t.check()


def test_sparse_17tib(zdtm) -> None:
    """17 TiB MAP_NORESERVE, 3 touched pages (one beyond 2^31 pages): quick, small image, pages back."""
    t = zdtm.start("vmas", "sparse")
    d, r = zdtm.cycle(t)
    if d is not None and r is not None:
        # CRIU 4.2 takes 0.04 s each way; the budget is loose on purpose: a page walk over 2^32 pages or a
        # 32-bit page count would take minutes or fail, not seconds.
        assert d.wall < 10, f"dump took {d.wall:.1f} s"
        assert r.wall < 10, f"restore took {r.wall:.1f} s"
    t.check()


def test_sparse_17tib_image_is_small(zdtm) -> None:
    import zdtmlib

    if zdtmlib.NOCR:
        pytest.skip("needs C/R")
    t = zdtm.start("vmas", "sparse")
    images = zdtm.images()
    d = zdtm.dump(t, images, "--leave-running")
    assert d.rc == 0, d.explain()
    pages = sum(p.stat().st_size for p in images.glob("pages-*.img"))
    assert pages <= 64 * 4096, f"pages images hold {pages} bytes for 3 touched pages"
    t.check()


def test_big_1gib_random(zdtm) -> None:
    """1 GiB of random data, checked by the target's own hash after restore."""
    t = zdtm.start("vmas", "big")
    zdtm.cycle(t)
    t.check(timeout=60)


def test_over_2gib_contiguous(zdtm) -> None:
    """2 GiB + 1 MiB of present pages in one VMA: more than one process_vm_readv/writev can move at once."""
    t = zdtm.start("vmas", "over2g")
    zdtm.cycle(t)
    t.check(timeout=60)


def test_unsupported_vma_refused(zdtm, engines) -> None:
    """A SysV shm mapping (not a kind of issue 3): the dump fails in one line naming the task and the mapping,
    and the task runs on exactly as it was; once supported, it must come back with its content."""
    import zdtmlib

    t = zdtm.start("counter", "--sysv-shm", "--mem", "4")
    before = zdtmlib.snapshot(t.pid)
    images = zdtm.images()
    d = zdtm.dump(t, images)
    if d.rc != 0:
        zdtmlib.assert_refusal(t, d, before, fds=(), kind="sysv")
        t.check()
        return
    zdtm.forget(t)
    r = zdtm.restore(images)
    assert r.rc == 0, r.explain()
    t.restored = True
    t.check()
