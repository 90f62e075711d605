"""The command line as users meet it: a subprocess, its exit code, its stdout and stderr."""

from __future__ import annotations

import re

import pytest


def test_version(run_cli):
    res = run_cli("--version")
    assert res.returncode == 0
    assert res.stdout.splitlines()[0] == "Version: 4.2"
    assert re.fullmatch(r"criu-core: \d+\.\d+\.\d+\S*", res.stdout.splitlines()[1])
    assert run_cli("-V").stdout == res.stdout


def test_help_lists_commands_and_plugin_options(run_cli):
    res = run_cli("dump", "--bogus", "--help")  # -h/--help wins over everything, as in CRIU
    assert res.returncode == 0
    for word in (
        "dump",
        "restore",
        "check",
        "--images-dir",
        "--tcp-established",
        "Options of plugin uprobes",
        "--allow-uprobes",
    ):
        assert word in res.stdout


@pytest.mark.parametrize(
    "argv,line",
    [
        (["dump", "--bogus-option"], "criu-py: unrecognized option '--bogus-option'"),
        (
            ["dump", "-t", "1", "--lazy-pages"],
            "criu-py: option --lazy-pages is recognised but not supported by criu-py yet",
        ),
        (
            ["restore", "--tcp-established"],
            "criu-py: option --tcp-established is recognised but not supported by criu-py yet",
        ),
        (["page-server"], "criu-py: command page-server is recognised but not supported by criu-py yet"),
        (["dump"], "criu-py: pid not specified: -t/--tree PID is required"),
        (["dump", "-t", "1", "-R", "-s"], "criu-py: --leave-running and --leave-stopped cannot be used together"),
        (
            ["dump", "-t", "1", "-D", "/nonexistent/imgs"],
            "criu-py: Couldn't open image dir /nonexistent/imgs: No such file or directory",
        ),
        (
            ["--disable-plugin", "uprobes", "dump", "-t", "1", "--allow-uprobes"],
            "criu-py: unrecognized option '--allow-uprobes'",
        ),
        ([], "criu-py: command is required"),
    ],
)
def test_one_line_errors_and_exit_1(run_cli, argv, line):
    res = run_cli(*argv)
    assert res.returncode == 1
    assert res.stderr == line + "\n"
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_dump_and_restore_reach_their_engine(run_cli, tmp_path):
    # Whatever the engines answer for a PID that does not exist, it is one line and exit 1, never a traceback.
    res = run_cli("dump", "-t", "999999", "-D", str(tmp_path))
    assert res.returncode == 1 and "Traceback" not in res.stderr and res.stderr.startswith("criu-py: ")


def test_check_looks_good(run_cli):
    res = run_cli("check")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Looks good.\n"


def test_check_all_warns_about_dirty_tracking(run_cli):
    from criu_core.kerndat import probe

    res = run_cli("check", "--all")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Looks good.\n"
    soft_dirty, _ = probe("mem_dirty_track")  # off on the project's machine (no CONFIG_MEM_SOFT_DIRTY)
    assert ("Dirty tracking is OFF" in res.stderr) == (not soft_dirty)
    assert (
        re.search(r"^Warn  \(criu_core/kerndat\.py:\d+\): Dirty tracking is OFF", res.stderr, re.MULTILINE)
        or soft_dirty
    )


def test_check_one_feature(run_cli):
    res = run_cli("check", "--feature", "pidfd_store")
    assert res.returncode == 0 and res.stdout == "pidfd_store is supported\n"
    res = run_cli("check", "--feature", "no_such_feature")
    assert res.returncode == 1 and res.stderr == "criu-py: Unknown feature no_such_feature\n"
    res = run_cli("check", "--feature", "list")
    assert res.returncode == 0 and "pagemap_scan" in res.stdout.split()


def test_plugins_lists_the_four_plugins(run_cli):
    res = run_cli("plugins")
    assert res.returncode == 0
    for name in ("amdgpu", "uprobes", "netns", "cuda_stub"):
        assert re.search(rf"^{name}  \(plugin, criu-plugin-{name.replace('_', '-')} ", res.stdout, re.MULTILINE), name
    res = run_cli("--disable-plugin", "uprobes", "plugins")
    assert "uprobes" not in res.stdout and "netns" in res.stdout
    res = run_cli("plugins", env={"CRIU_PY_DISABLE_PLUGINS": "netns,amdgpu"})
    assert "netns" not in res.stdout and "amdgpu" not in res.stdout and "uprobes" in res.stdout


def test_exec_is_refused_like_criu(run_cli):
    res = run_cli("exec")
    assert res.returncode == 255 and res.stderr == 'criu-py: The "exec" action is deprecated by the Compel library.\n'
