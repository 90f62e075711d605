"""Record a real /proc tree for the parser tests: ``python record_proc.py OUTDIR``.

Starts record/tricky.c (compiled here), copies its /proc files into OUTDIR/proc/<pid>/..., and writes
OUTDIR/proc/meta.json with the facts the tests check (pid, fd numbers). Re-run to refresh the data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

FILES = ["stat", "status", "maps", "smaps", "limits", "auxv", "mountinfo", "comm", "cmdline"]


def main() -> None:
    out = Path(sys.argv[1]) / "proc"
    here = Path(__file__).parent
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "tricky"
        subprocess.run(["gcc", "-O1", "-o", str(exe), str(here / "tricky.c")], check=True)
        proc = subprocess.Popen([str(exe), tmp], stdout=subprocess.PIPE, text=True)
        fds = [int(x) for x in proc.stdout.readline().split()[1:]]
        pid = proc.pid
        try:
            if out.exists():
                shutil.rmtree(out)
            dst = out / str(pid)
            (dst / "fdinfo").mkdir(parents=True)
            for name in FILES:
                (dst / name).write_bytes(Path(f"/proc/{pid}/{name}").read_bytes())
            for fd in os.listdir(f"/proc/{pid}/fdinfo"):
                (dst / "fdinfo" / fd).write_bytes(Path(f"/proc/{pid}/fdinfo/{fd}").read_bytes())
            for tid in os.listdir(f"/proc/{pid}/task"):
                tdir = dst / "task" / tid
                tdir.mkdir(parents=True)
                for name in ("stat", "status", "children"):
                    (tdir / name).write_bytes(Path(f"/proc/{pid}/task/{tid}/{name}").read_bytes())
            names = ["deleted", "spaces", "eventfd", "epoll", "inotify", "signalfd", "timerfd"]
            meta = {"pid": pid, "fds": dict(zip(names, fds)), "tmpdir": tmp}
            (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


if __name__ == "__main__":
    main()
