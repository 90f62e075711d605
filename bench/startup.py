"""Start-up latency of the command line (a benchmark script, not a test).

Prints the median and minimum wall time of ``criu-py --version``, ``criu-py check``, ``criu-py plugins`` and
``criu-py --help``, next to the interpreter's own start (``python3 -S -c pass``, ``python3 -c pass``, and the
venv's python) and the floor of the mandated stack measured in the same run: the venv's python importing what
every dump and restore must load whatever criu-core does (pluggy; ctypes; protobuf's upb runtime with
``internal.builder``, which the generated ``*_pb2`` modules use, and ``internal.well_known_types``, which upb
imports itself when it creates the first message class). Those rows tell how much of a command's fixed cost
is interpreter plus dependencies and how much is criu-core. ``criu-py`` is the console script beside ``sys.executable`` (or on
PATH); the repository root is put first on PYTHONPATH so this checkout is what runs.

    python bench/startup.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (label, code): cumulative imports no criu-py dump or restore can do without (pluggy, protobuf, ctypes).
# well_known_types as criu-py loads it: with calendar deferred (criu_core.lazymod), as it stays in a dump.
_PB = (
    "from criu_core.lazymod import defer; defer('calendar'); "
    "from google.protobuf.internal import builder, well_known_types"
)
FLOOR: list[tuple[str, str]] = [
    ("floor: import pluggy", "import pluggy"),
    ("floor: + ctypes", "import pluggy, ctypes"),
    ("floor: + protobuf runtime (upb, builder, WKT)", "import pluggy, ctypes; " + _PB),
]


def _time(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples)


def floor(runs: int = 7) -> list[tuple[str, float, float]]:
    """(label, median s, min s) of ``venv python -c pass`` and of the :data:`FLOOR` rows, measured now."""
    cases = [("venv python -c pass", "pass"), *FLOOR]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [(label, *_time([sys.executable, "-c", code], runs, env)) for label, code in cases]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=20)
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    script = Path(sys.executable).with_name("criu-py")
    criu_py = str(script) if script.exists() else (shutil.which("criu-py") or "")
    # The real interpreter behind the venv: `python3` on PATH may be a pyenv shim (a shell script, ~45 ms more).
    base_python = getattr(sys, "_base_executable", "") or sys.executable
    path_python = shutil.which("python3") or base_python
    cases: list[tuple[str, list[str]]] = [
        ("python3 -S -c pass (base interpreter)", [base_python, "-S", "-c", "pass"]),
        ("python3 -c pass (base interpreter)", [base_python, "-c", "pass"]),
        ("python3 -c pass (PATH: " + path_python + ")", [path_python, "-c", "pass"]),
        ("venv python -c pass", [sys.executable, "-c", "pass"]),
    ]
    for label, code in FLOOR:
        cases.append((label, [sys.executable, "-c", code]))
    if criu_py:
        for sub in (["--version"], ["check"], ["plugins"], ["--help"]):
            cases.append(("criu-py " + " ".join(sub), [criu_py, *sub]))
    else:
        print("criu-py console script not found; timing python -m criu_core.cli instead")
    cases.append(("python -m criu_core.cli --version", [sys.executable, "-m", "criu_core.cli", "--version"]))
    print(f"{'command':<48} {'median ms':>10} {'min ms':>8}   ({args.runs} runs each)")
    for label, cmd in cases:
        med, low = _time(cmd, args.runs, env)
        print(f"{label:<48} {med * 1e3:>10.1f} {low * 1e3:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
