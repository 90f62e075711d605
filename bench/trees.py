"""Issue 4 figures: dump and restore wall times (CLI) of a 16-thread process, a 200-thread process and a
100-process tree, next to the single-process fixed cost (a trivial C task) of the same run.

Each run uses a fresh target and image directory, and every restore is verified: the targets check their
TIDs/PIDs, parents, TLS, names and masks themselves and say PASS. A target the engine cannot dump yet is
reported as skipped with criu-py's message. ``python bench/trees.py [--quick]``; writes only under a temp dir.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "zdtm"))
sys.path.insert(0, str(HERE))

import zdtmlib
from dump_restore import set_subreaper

__all__ = ["main", "run"]


def _one(builder: zdtmlib.Builder, tmp: Path, target: str, arg: str, i: int) -> tuple[float, float] | str:
    ctl = zdtmlib.new_ctl_dir()
    images = tmp / f"{target}-{arg}-{i}"
    images.mkdir()
    t = zdtmlib.start_process([str(builder.build(target)), arg], target, ctl)
    tree = zdtmlib.descendants(t.pid)
    try:
        os.sync()
        d = zdtmlib.run_cli(["dump", "-t", str(t.pid), "-D", str(images)])
        if d.rc:
            return d.stderr.strip() or f"dump rc {d.rc}"
        t.popen.wait(30)
        zdtmlib.wait_all_gone([t.pid, *tree])
        r = zdtmlib.run_cli(["restore", "-D", str(images), "-d"])
        if r.rc:
            return r.stderr.strip() or f"restore rc {r.rc}"
        t.restored = True
        t.check(timeout=60)
        return d.wall, r.wall
    finally:
        for pid in [*zdtmlib.descendants(t.pid), t.pid]:
            if zdtmlib.pid_alive(pid):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        zdtmlib.wait_all_gone([t.pid, *tree])
        shutil.rmtree(ctl, ignore_errors=True)


def run(quick: bool = False) -> None:
    set_subreaper()
    runs = 2 if quick else 5
    plan = [
        ("single-process fixed cost", "threads", "1"),
        ("16 threads", "threads", "16"),
        ("200 threads", "threads", "200"),
        ("100-process tree", "tree", "100"),
    ]
    with tempfile.TemporaryDirectory(prefix="criu-bench-trees-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "bin").mkdir()
        builder = zdtmlib.Builder(tmp / "bin")
        print("\ncriu-py threads and trees (CLI wall time, ms: median (min-max))")
        print(f"{'target':<28}{'dump ms':>22}  {'restore ms':>22}")
        for name, target, arg in plan:
            dumps, restores, err = [], [], ""
            for i in range(runs):
                res = _one(builder, tmp, target, arg, i)
                if isinstance(res, str):
                    err = res.splitlines()[-1]
                    break
                dumps.append(res[0])
                restores.append(res[1])
            if err:
                print(f"{name:<28}  skipped: {err}")
                continue
            print(f"{name:<28}{_fmt(dumps):>22}  {_fmt(restores):>22}", flush=True)


def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:7.1f} ({min(xs) * 1000:.0f}-{max(xs) * 1000:.0f})"


def main(argv: list[str]) -> int:
    run(quick="--quick" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
