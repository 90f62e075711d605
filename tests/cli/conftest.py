"""Shared helpers for the command-line tests: an isolated environment and a subprocess runner.

Every test points the "global" config directory (``CRIU_PY_GLOBAL_CONFIG_DIR``) and ``$HOME`` at temporary
directories, so /etc/criu and the real home directory are never read or written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from criu_core.cli.app import parse_command_line
from criu_core.plugins import PluginHost

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def host() -> PluginHost:
    """One host with every installed plugin (parsing does not change it beyond adding CRIU's table once)."""
    return PluginHost()


@pytest.fixture
def cfg_env(tmp_path: Path) -> dict[str, str]:
    """An environment with empty global and user config locations."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "home").mkdir()
    return {"CRIU_PY_GLOBAL_CONFIG_DIR": str(tmp_path / "etc"), "HOME": str(tmp_path / "home")}


@pytest.fixture
def parse(host, cfg_env):
    """``parse(*argv, env=...)`` -> Invocation, with the isolated environment."""

    def _parse(*argv: str, env: dict[str, str] | None = None, host_=None):
        return parse_command_line(list(argv), env={**cfg_env, **(env or {})}, host=host_ or host)

    return _parse


@pytest.fixture
def cli_env(cfg_env) -> dict[str, str]:
    """The environment for a ``criu-py`` subprocess: this checkout first on PYTHONPATH, isolated configs."""
    env = {k: v for k, v in os.environ.items() if k not in ("CRIU_CONFIG_FILE", "CRIU_PY_DISABLE_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(cfg_env)
    return env


@pytest.fixture
def run_cli(cli_env, tmp_path):
    """``run_cli(*argv, env=..., cwd=...)`` -> CompletedProcess of ``python -m criu_core.cli``."""

    def _run(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "criu_core.cli", *argv],
            check=False,
            capture_output=True,
            text=True,
            env={**cli_env, **(env or {})},
            cwd=cwd or tmp_path,
            timeout=60,
        )

    return _run
