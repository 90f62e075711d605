"""``make bench``: the raw limits, single-process dump/restore figures and thread/tree figures, in one run.

``python bench/run.py [--quick]``. Needs root. Writes only under temp dirs. The figures belong in README.md.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dump_restore
import trees


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("bench: needs root (ptrace, clone3 with set_tid)", file=sys.stderr)
        return 1
    quick = "--quick" in argv
    # The same precompile `make venv` does: the environment sets PYTHONDONTWRITEBYTECODE=1, so without it
    # every CLI call would recompile criu_core (tens of ms of the fixed cost). __pycache__ is git-ignored.
    root = HERE.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(root / "criu_core"), str(root / "plugins")],
        stdout=subprocess.DEVNULL,
        check=False,
    )
    print(f"criu-py benchmarks on {platform.node()}: Linux {platform.release()}, {os.cpu_count()} CPUs")
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "(quick)" if quick else "")
    dump_restore.run(quick=quick)
    trees.run(quick=quick)
    # The other scripts of bench/ (CLI start-up, in-process dump phases, amdgpu BO restore), each in its own
    # interpreter.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), str(HERE.parent / "plugins" / "amdgpu")])
    for script in ("startup.py", "dump_phases.py", "amdgpu_bo_restore.py"):
        if (HERE / script).exists():
            print(f"\n== bench/{script}", flush=True)
            subprocess.run([sys.executable, str(HERE / script)], env=env, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
