"""Distributions install separately: core alone works and lists only built-ins; a plugin adds itself.

Builds a fresh virtual environment, installs the core from this checkout (a real, non-editable pip install,
its dependencies from the package index or pip's cache), then one plugin distribution on top.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    res = subprocess.run([str(a) for a in args], check=False, capture_output=True, text=True, cwd=cwd, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "HOME": "/root"})
    assert res.returncode == 0, f"{args}: {res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = tmp_path_factory.mktemp("venv") / "v"
    base = getattr(sys, "_base_executable", sys.executable)
    _run(base, "-m", "venv", env)
    _run(env / "bin/python", "-m", "pip", "install", "-q", ROOT)
    return env


def _plugins(env: Path) -> list[str]:
    out = _run(env / "bin/criu-py", "plugins")
    return [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]


def test_core_alone_lists_only_builtins(venv: Path) -> None:
    names = _plugins(venv)
    assert names and all(n.startswith("builtin.") for n in names), names
    assert "Version" in _run(venv / "bin/criu-py", "--version")
    out = _run(venv / "bin/criu-py", "check")
    assert "Looks good." in out


def test_each_plugin_installs_alone_on_top_of_core(venv: Path) -> None:
    for name in ("uprobes", "cuda_stub", "netns", "amdgpu"):
        _run(venv / "bin/python", "-m", "pip", "install", "-q", ROOT / "plugins" / name)
        names = _plugins(venv)
        assert name in names, names
        _run(venv / "bin/python", "-m", "pip", "uninstall", "-q", "-y", "criu-plugin-" + name.replace("_", "-"))
        assert name not in _plugins(venv)
