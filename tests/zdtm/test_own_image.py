"""criu-core's own per-task image, criu-core-PID.img: a dump of ordinary state writes none (only CRIU's files,
CRIU's messages never extended); each feature CRIU's images cannot carry writes one, for the task that has it,
and ``criu-py show`` decodes it (Debian's crit refuses it by its magic, as it refuses any file it does not know).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import zdtmlib

from criu_core.images import magic

CRIT = ["/usr/bin/python3", "/usr/bin/crit"]


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _region(pid: int, size: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if hi - lo == size:
            return lo, hi
    raise AssertionError(f"no VMA of {size} bytes in task {pid}")


def _dump(zdtm, t, *args: str) -> Path:
    images = zdtm.images()
    d = zdtm.dump(t, images, "--leave-running", *args)
    assert d.rc == 0, d.explain()
    return images


def _own_files(images: Path) -> list[str]:
    return sorted(p.name for p in images.glob("criu-core-*.img"))


def _show(path: Path) -> dict:
    """``criu-py show FILE``: the JSON of the file, decoded by this checkout."""
    res = zdtmlib.run_cli(["show", str(path)])
    assert res.rc == 0, res.explain()
    return json.loads(res.stdout)


def test_plain_dump_writes_only_criu_files(zdtm) -> None:
    """A tree of forked processes (SIGCHLD, no named VMA, no --dedup-cow-pages): every file is one of CRIU's."""
    if zdtmlib.NOCR:
        pytest.skip("needs C/R")
    t = zdtm.start("tree", "3")
    images = _dump(zdtm, t)
    assert _own_files(images) == []
    names = sorted(p.name for p in images.iterdir() if not p.name.endswith(".log"))
    kinds = {n: magic.type_for_filename(n) for n in names}
    assert all(k is not None for k in kinds.values()), kinds
    assert {k[0].name for k in kinds.values()} >= {"INVENTORY", "PSTREE", "CORE", "MM", "PAGEMAP", "PAGES"}
    assert all(k[0].name != "CRIU_CORE_TASK" for k in kinds.values())
    t.check()


def test_exit_signal_writes_one_own_image(zdtm) -> None:
    if zdtmlib.NOCR:
        pytest.skip("needs C/R")
    t = zdtm.start("clones", "exitsig")
    (child,) = _children(t.pid)
    images = _dump(zdtm, t)
    assert _own_files(images) == [f"criu-core-{child}.img"]
    shown = _show(images / f"criu-core-{child}.img")
    assert shown["magic"] == "CRIU_CORE_TASK"
    assert shown["entries"] == [{"exit_signal": 10}]  # SIGUSR1, nothing else
    # CRIU's core image of that task is still CRIU's: crit decodes it
    res = subprocess.run(
        [*CRIT, "decode", "-i", str(images / f"core-{child}.img")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    t.check()


def test_dedup_cow_pages_writes_one_own_image(zdtm) -> None:
    if zdtmlib.NOCR:
        pytest.skip("needs C/R")
    t = zdtm.start("cowpages", "32")
    (child,) = _children(t.pid)
    images = _dump(zdtm, t, "--dedup-cow-pages")
    assert _own_files(images) == [f"criu-core-{child}.img"]  # the parent leaves no page to anyone
    (entry,) = _show(images / f"criu-core-{child}.img")["entries"]
    assert set(entry) == {"parent_pages"}, entry
    lo, hi = _region(t.pid, 32 << 20)
    inside = [r for r in entry["parent_pages"] if lo <= int(r["vaddr"], 16) < hi]
    # all of the 32 MiB region but the pages cowpages.c changes (3 + 3) or drops (1)
    assert sum(r["nr_pages"] for r in inside) == 32 * 256 - 3 - 3 - 1, entry
    assert all(r["vaddr"].startswith("0x") for r in entry["parent_pages"])  # show's pretty form: hex addresses
    t.check()


def test_vma_name_writes_one_own_image(zdtm) -> None:
    """Skips (the target says why) on a kernel without CONFIG_ANON_VMA_NAME, where nothing can be named; the
    restore side of names is tested on any kernel by test_vma_names.py and tests/restore."""
    if zdtmlib.NOCR:
        pytest.skip("needs C/R")
    t = zdtm.start("vmas", "anon_name")
    images = _dump(zdtm, t)
    assert _own_files(images) == [f"criu-core-{t.pid}.img"]
    (entry,) = _show(images / f"criu-core-{t.pid}.img")["entries"]
    assert [n["name"] for n in entry["vma_names"]] == ["zdtm-named"] and "exit_signal" not in entry, entry
    t.check()
