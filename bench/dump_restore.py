"""Dump and restore wall times of ``criu-py`` (the CLI, as a user runs it), throughput, and the fixed cost.

Targets: a tiny C task (the fixed cost of a trivial dump and restore), C tasks holding 64 MiB, 512 MiB and
2 GiB touched with a pattern, and a python3 interpreter. Each run uses a fresh target and a fresh image
directory; every restore is verified (same PID; the C targets check their memory pattern and registers and
say PASS; the python counter keeps counting). Medians, with min-max, are printed next to the raw limits of
the same run (bench/raw_limits.py).

``python bench/dump_restore.py [--quick]``. Writes only under a temp dir.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "zdtm"))

import zdtmlib

__all__ = ["Row", "bench_target", "main", "set_subreaper"]

PY_PROG = r"""
import signal, sys, time
ballast = bytearray(4 << 20)
print("READY", flush=True)
i = 0
while True:
    print(f"n={i}", flush=True)
    i += 1
    time.sleep(0.01)
"""


@dataclass
class Row:
    name: str
    dump_s: list[float] = field(default_factory=list)
    restore_s: list[float] = field(default_factory=list)
    image_bytes: int = 0
    pages_bytes: int = 0
    error: str = ""

    def med(self, xs: list[float]) -> float:
        return statistics.median(xs) if xs else float("nan")


def set_subreaper() -> None:
    """Restored tasks are reparented to criu-py's parent: that is us, so we must reap them."""
    try:
        from criu_core.sys.subreaper import set_child_subreaper

        set_child_subreaper(True)
    except ImportError:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0):  # PR_SET_CHILD_SUBREAPER
            raise OSError(ctypes.get_errno(), "PR_SET_CHILD_SUBREAPER") from None


def _start(kind: str, arg: int, builder: zdtmlib.Builder, ctl: Path) -> zdtmlib.Target:
    if kind == "python":
        return zdtmlib.start_process([zdtmlib.SYS_PYTHON, "-c", PY_PROG], "python3", ctl)
    args = ["--mem", str(arg)] if arg else []
    return zdtmlib.start_process([str(builder.build("counter")), *args], "counter", ctl)


def _verify(kind: str, t: zdtmlib.Target) -> None:
    if kind == "python":

        def count() -> int:
            return sum(1 for line in t.lines() if re.fullmatch(r"n=\d+", line))

        n = count()
        zdtmlib.wait_for(lambda: count() >= n + 3, 10, "the restored python counter to count")
        t.kill()
    else:
        t.check(timeout=60)


def bench_target(name: str, kind: str, arg: int, runs: int, builder: zdtmlib.Builder, tmp: Path) -> Row:
    row = Row(name)
    for i in range(runs):
        ctl = zdtmlib.new_ctl_dir()
        images = tmp / f"{name.replace(' ', '_')}-{i}"
        images.mkdir()
        t = _start(kind, arg, builder, ctl)
        try:
            # As a user runs it: no -v4 log, fresh directory; no dirty pages left from the previous run.
            os.sync()
            d = zdtmlib.run_cli(["dump", "-t", str(t.pid), "-D", str(images)])
            if d.rc:
                row.error = d.stderr.strip().splitlines()[-1] if d.stderr.strip() else f"dump rc {d.rc}"
                return row
            t.popen.wait(30)
            zdtmlib.wait_gone(t.pid)
            r = zdtmlib.run_cli(["restore", "-D", str(images), "-d"])
            if r.rc:
                row.error = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"restore rc {r.rc}"
                return row
            t.restored = True
            _verify(kind, t)
            row.dump_s.append(d.wall)
            row.restore_s.append(r.wall)
            row.image_bytes = sum(p.stat().st_size for p in images.iterdir() if not p.name.endswith(".log"))
            row.pages_bytes = sum(p.stat().st_size for p in images.glob("pages-*.img"))
        finally:
            if zdtmlib.pid_alive(t.pid):
                t.kill()
            # Images stay until the end of the whole run: deleting big files on this ext4 (mounted with
            # discard) slows the writes that follow, and would make each run pay for the previous one.
            shutil.rmtree(ctl, ignore_errors=True)
    return row


def _fmt_ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.median(xs) * 1000:7.1f} ({min(xs) * 1000:.0f}-{max(xs) * 1000:.0f})"


def print_table(
    rows: list[Row],
    raw: dict[str, float] | None,
    fixed: Row | None,
    floor: list[tuple[str, float, float]] | None = None,
) -> None:
    print()
    print("criu-py dump / restore (CLI wall time, ms: median (min-max); GB/s = pages / median wall time)")
    hdr = f"{'target':<22}{'pages MiB':>10}  {'dump ms':>22}  {'restore ms':>22}  {'dump GB/s':>9}  {'rest GB/s':>9}"
    print(hdr)
    print("-" * len(hdr))
    for row in rows:
        if row.error:
            print(f"{row.name:<22}  failed: {row.error}")
            continue
        mib = row.pages_bytes / (1 << 20)
        dg = row.pages_bytes / row.med(row.dump_s) / 1e9
        rg = row.pages_bytes / row.med(row.restore_s) / 1e9
        print(
            f"{row.name:<22}{mib:>10.1f}  {_fmt_ms(row.dump_s):>22}  {_fmt_ms(row.restore_s):>22}  {dg:>9.2f}  {rg:>9.2f}"
        )
    if fixed and not fixed.error:
        print(
            f"\nfixed cost (trivial C task): dump {fixed.med(fixed.dump_s) * 1000:.1f} ms, "
            f"restore {fixed.med(fixed.restore_s) * 1000:.1f} ms per command (aim: < 60 ms; CRIU 4.2 about 45 ms)"
        )
        if floor:
            # What any dump or restore must load before criu-core runs a line (bench/startup.py's FLOOR rows).
            parts = ", ".join(f"{label.removeprefix('floor: ')} {med * 1000:.1f}" for label, med, _ in floor)
            print(f"  floor of the mandated stack (same run, median ms): {parts}")
            base = floor[-1][1]
            print(
                f"  criu-core's own share: dump {(fixed.med(fixed.dump_s) - base) * 1000:.1f} ms, "
                f"restore {(fixed.med(fixed.restore_s) - base) * 1000:.1f} ms"
            )
        big = [r for r in rows if r.pages_bytes >= (256 << 20) and not r.error]
        for r in big:
            d = r.pages_bytes / max(r.med(r.dump_s) - fixed.med(fixed.dump_s), 1e-9) / 1e9
            rr = r.pages_bytes / max(r.med(r.restore_s) - fixed.med(fixed.restore_s), 1e-9) / 1e9
            print(f"  {r.name}: without the fixed cost, dump {d:.2f} GB/s, restore {rr:.2f} GB/s")
    if raw:
        print(
            f"raw limits (same run, {raw['size_mib']} MiB): process_vm_readv+write {raw['readv_write_gbps']:.2f} GB/s"
            f" (readv alone {raw['readv_only_gbps']:.2f}), process_vm_writev into fresh pages"
            f" {raw['writev_fresh_gbps']:.2f} GB/s; aim: >= 80% of these"
        )


def run(quick: bool = False, with_raw: bool = True) -> list[Row]:
    set_subreaper()
    many, few = (3, 1) if quick else (7, 3)
    plan = [
        ("trivial C task", "c", 0, many),
        ("C 64 MiB", "c", 64, many),
        ("C 512 MiB", "c", 512, few),
        ("C 2 GiB", "c", 2048, few),
        ("python3 interpreter", "python", 0, many),
    ]
    with tempfile.TemporaryDirectory(prefix="criu-bench-") as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "bin").mkdir()
        builder = zdtmlib.Builder(tmp / "bin")
        raw = None
        if with_raw:
            from raw_limits import measure

            raw = measure(512, runs=1 if quick else 5, images_fs=tmp)  # page-cache writes here are noisy
            os.sync()  # its GiBs of dirty pages would otherwise be written back during the next rows
        rows = []
        for name, kind, arg, runs in plan:
            t0 = time.monotonic()
            rows.append(bench_target(name, kind, arg, runs, builder, tmp))
            print(f"  {name}: {runs} runs in {time.monotonic() - t0:.1f} s", flush=True)
        from startup import floor

        print_table(rows, raw, rows[0], floor(runs=many + 4))
    return rows


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("needs root (ptrace, clone3 with set_tid)", file=sys.stderr)
        return 1
    run(quick="--quick" in argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
