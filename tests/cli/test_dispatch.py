"""How the command line calls the engines, and what it does not import on the way.

The engines are replaced by stand-in modules in ``sys.modules`` so these tests hold before and after
``criu_core.dump`` and ``criu_core.restore`` land.
"""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from criu_core.cli.main import main
from criu_core.context import DumpContext, RestoreContext


@pytest.fixture
def engines(monkeypatch, cfg_env):
    for key, value in cfg_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CRIU_CONFIG_FILE", raising=False)
    seen: dict[str, object] = {}

    def dump_run(ctx):
        seen["dump"] = ctx
        ctx.log.info("engine ran")

    def restore_run(ctx):
        seen["restore"] = ctx
        return 7  # the root task's exit status, passed through as CRIU does without -d

    monkeypatch.setitem(sys.modules, "criu_core.dump", types.SimpleNamespace(run=dump_run))
    monkeypatch.setitem(sys.modules, "criu_core.restore", types.SimpleNamespace(run=restore_run))
    return seen


def test_dump_context(engines, tmp_path):
    imgs, work = tmp_path / "imgs", tmp_path / "work"
    imgs.mkdir()
    work.mkdir()
    rc = main(
        [
            "dump",
            "-t",
            "4242",
            "-D",
            str(imgs),
            "-W",
            str(work),
            "-o",
            "dump.log",
            "-v4",
            "--pidfile",
            "p.pid",
            "-j",
            "--allow-uprobes",
        ]
    )
    assert rc == 0
    ctx = engines["dump"]
    assert isinstance(ctx, DumpContext) and ctx.stage == "dump" and ctx.root_pid == 4242
    assert ctx.images_dir == imgs and ctx.work_dir == work and ctx.log.name == "criu"
    assert ctx.options.shell_job and ctx.options.allow_uprobes and ctx.options.verbosity == 4
    assert ctx.options.pidfile == str(work / "p.pid") and ctx.options.log_file == str(work / "dump.log")
    assert ctx.host.has_plugin("uprobes")
    assert "engine ran" in (work / "dump.log").read_text()


def test_pre_dump_stage(engines, tmp_path):
    assert main(["pre-dump", "-t", "1", "-D", str(tmp_path)]) == 0
    assert engines["dump"].stage == "pre-dump"


def test_restore_context_and_exit_status(engines, tmp_path):
    assert main(["restore", "-D", str(tmp_path), "-d", "-S"]) == 7
    ctx = engines["restore"]
    assert isinstance(ctx, RestoreContext) and ctx.stage == "restore"
    assert ctx.images_dir == tmp_path and ctx.work_dir == tmp_path
    assert ctx.options.restore_detached and ctx.options.restore_sibling


def test_engine_error_is_one_line(engines, monkeypatch, tmp_path, capsys):
    from criu_core.errors import NoSuchProcess

    def failing(ctx):
        raise NoSuchProcess(ctx.root_pid)

    monkeypatch.setitem(sys.modules, "criu_core.dump", types.SimpleNamespace(run=failing))
    assert main(["dump", "-t", "31337", "-D", str(tmp_path), "-o", "d.log"]) == 1
    assert capsys.readouterr().err == "criu-py: No such process: 31337\n"
    assert "Error (" in (tmp_path / "d.log").read_text()


def test_a_bug_keeps_its_traceback(engines, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "criu_core.dump", types.SimpleNamespace(run=lambda ctx: 1 / 0))
    with pytest.raises(ZeroDivisionError):
        main(["dump", "-t", "1", "-D", str(tmp_path)])


def _imported(cli_env, *argv: str) -> set[str]:
    code = "import sys; from criu_core.cli.main import main; main(sys.argv[1:]); print(' '.join(sys.modules))"
    res = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, env=cli_env, check=False, timeout=60
    )
    return set(res.stdout.split())


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["plugins"], ["check"]])
def test_light_commands_import_no_protobuf_and_no_engine(cli_env, argv):
    mods = _imported(cli_env, *argv)
    assert "criu_core.cli.main" in mods
    assert not {m for m in mods if m.startswith("google.protobuf")}
    assert not {"criu_core.dump", "criu_core.restore", "criu_core.images.framing", "criu_core.ptrace"} & mods
    if argv == ["--version"]:
        assert not {"pluggy", "logging", "ctypes", "criu_core.plugins"} & mods
    if argv != ["check"]:
        assert "ctypes" not in mods


def test_demo_falls_back_to_check_and_plugins(engines, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "criu_core.demo", None)  # as if the lead's demo were not in this build
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("$ criu-py check\nLooks good.\n\n$ criu-py plugins\n") and "uprobes  (plugin" in out


def test_image_tools_get_their_argv_unparsed(monkeypatch):
    seen = {}
    tool = types.SimpleNamespace(
        main_decode=lambda argv: seen.setdefault("decode", argv) and 0,
        main_encode=lambda argv: seen.setdefault("encode", argv) and 0,
        main_show=lambda argv: seen.setdefault("show", argv) and 3,
    )
    monkeypatch.setitem(sys.modules, "criu_core.images.tool", tool)
    assert main(["decode", "-i", "core-1.img", "--pretty"]) == 0
    assert main(["encode", "-i", "x.json", "-o", "x.img"]) == 0
    assert main(["show", "/imgs"]) == 3
    assert seen == {
        "decode": ["-i", "core-1.img", "--pretty"],
        "encode": ["-i", "x.json", "-o", "x.img"],
        "show": ["/imgs"],
    }


def test_missing_module_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "criu_core.images.tool", None)
    assert main(["decode", "-i", "x"]) == 1
    assert capsys.readouterr().err == "criu-py: decode is not available in this build\n"
