"""Dump benchmark (a script, not a test): ``python bench/dump_phases.py [MiB ...]``.

For each size: start a counter with that much touched memory, dump it 5 times with --leave-running into fresh
directories, print the median in-process dump time and its phases, next to the raw process_vm_readv+write
throughput measured in the same run.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from criu_core.context import DumpContext
from criu_core.dump import dump_tree
from criu_core.plugins import PluginHost
from criu_core.sys.memory import process_vm_readv
from criu_core.sys.proc import set_child_subreaper


def main() -> None:
    sizes = [int(x) for x in sys.argv[1:]] or [64, 512]
    set_child_subreaper(True)
    tmp = Path(tempfile.mkdtemp(prefix="criu-bench-"))
    exe = tmp / "bigcounter"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(Path(__file__).parent / "targets" / "bigcounter.c")], check=True)
    host = PluginHost(load_entry_points=False)
    for mib in sizes:
        proc = subprocess.Popen(
            [str(exe), str(mib)], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(0.5 + mib / 1000)
        times, res = [], None
        for i in range(5):
            opts = host.options.defaults()
            opts.leave_running = True
            d = tmp / f"d{mib}-{i}"
            t0 = time.perf_counter()
            res = dump_tree(DumpContext(options=opts, host=host, images_dir=d, root_pid=proc.pid))
            times.append((time.perf_counter() - t0) * 1000)
            shutil.rmtree(d)
        assert res is not None
        # raw copy path: readv 4 MiB chunks of the heap into a buffer, write to a fresh file
        maps = Path(f"/proc/{proc.pid}/maps").read_text().splitlines()
        heap = max(
            (m for m in maps if "rw-p" in m),
            key=lambda m: int(m.split()[0].split("-")[1], 16) - int(m.split()[0].split("-")[0], 16),
        )
        start, end = (int(x, 16) for x in heap.split()[0].split("-"))
        buf = ctypes.create_string_buffer(4 << 20)
        t0 = time.perf_counter()
        with open(tmp / "raw", "wb") as f:
            for a in range(start, end, 4 << 20):
                n = min(4 << 20, end - a)
                process_vm_readv(proc.pid, [(ctypes.addressof(buf), n)], [(a, n)])
                f.write(memoryview(buf)[:n])
        raw = (end - start) / (time.perf_counter() - t0) / 1e9
        os.unlink(tmp / "raw")
        print(
            f"{mib:5d} MiB: dump median {statistics.median(times):7.1f} ms (min {min(times):.1f}, max "
            f"{max(times):.1f}); pages {res.pages_written}, freeze {res.freezing_time / 1000:.1f} ms, memory "
            f"{res.memdump_time / 1000:.1f} ms; raw readv+write {raw:.2f} GB/s"
        )
        proc.kill()
        proc.wait()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
