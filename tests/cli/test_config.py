"""Configuration files: syntax (CRIU's parse_statement) and precedence (CRIU's next_config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from criu_core.cli.config import apply_rpc_config_file, parse_config_text
from criu_core.errors import UsageError


@pytest.mark.parametrize(
    "text,tokens",
    [
        ("leave-running\n", ["--leave-running"]),
        ("log-file /tmp/x.log\n", ["--log-file", "/tmp/x.log"]),
        ("log-file=/tmp/x.log\n", ["--log-file=/tmp/x.log"]),
        ("  \t verbosity   4  \n", ["--verbosity", "4"]),
        ("# a comment\n\n   # indented comment\ntcp-close\n", ["--tcp-close"]),
        ("tcp-established # trailing comment\n", ["--tcp-established"]),
        ("log-file x.log #comment with words\n", ["--log-file", "x.log"]),
        ('log-file "/tmp/a b.log"\n', ["--log-file", "/tmp/a b.log"]),
        ('action-script "say \\"hi\\" now"\n', ["--action-script", 'say "hi" now']),
        ('lsm-profile ""\n', ["--lsm-profile", ""]),
        ("log-file a\\b\n", ["--log-file", "a\\b"]),
        ("no-tcp-established\nshell-job\n", ["--no-tcp-established", "--shell-job"]),
        ("", []),
    ],
)
def test_syntax(text, tokens):
    assert parse_config_text(text, "t.conf") == tokens


def test_extra_tokens_are_an_error_naming_file_and_line():
    with pytest.raises(UsageError, match=r"t\.conf:2: Unsupported configuration file format"):
        parse_config_text("shell-job\nlog-file a b\n", "t.conf")


def test_leading_dashes_make_an_unknown_option(parse, tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("--leave-running\n")
    with pytest.raises(UsageError, match=r"unrecognized option '----leave-running'"):
        parse("check", "--config", str(conf))


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.fixture
def files(cfg_env, tmp_path):
    """Four config sources, each setting log-file to its own name and one flag of its own."""
    glob = _write(Path(cfg_env["CRIU_PY_GLOBAL_CONFIG_DIR"]) / "default.conf", "log-file global.log\nshell-job\n")
    user = _write(Path(cfg_env["HOME"]) / ".criu" / "default.conf", "log-file user.log\nlog-pid\n")
    envf = _write(tmp_path / "env.conf", "log-file env.log\ndisplay-stats\n")
    cmdf = _write(tmp_path / "cmd.conf", "log-file cmd.log\nverbosity=4\n")
    return {"global": glob, "user": user, "env": envf, "cmd": cmdf}


def test_precedence_later_wins(parse, files):
    inv = parse("check")
    assert inv.options.log_file == "user.log" and inv.options.shell_job and inv.options.log_pid
    assert inv.sources == [files["global"], files["user"], "argv"]
    inv = parse("check", env={"CRIU_CONFIG_FILE": files["env"]})
    assert inv.options.log_file == "env.log" and inv.options.display_stats and inv.options.shell_job
    inv = parse("check", "-o", "argv.log", env={"CRIU_CONFIG_FILE": files["env"]})
    assert inv.options.log_file == "argv.log"
    assert inv.given["log-file"].source == "argv" and inv.given["display-stats"].source == files["env"]


def test_config_option_disables_the_default_files(parse, files):
    inv = parse("check", "--config", files["cmd"], env={"CRIU_CONFIG_FILE": files["env"]})
    assert inv.sources == [files["env"], files["cmd"], "argv"]
    assert inv.options.log_file == "cmd.log" and inv.options.verbosity == 4
    assert not inv.options.shell_job and not inv.options.log_pid  # the default files were skipped
    inv = parse("check", f"--config={files['cmd']}")
    assert inv.sources == [files["cmd"], "argv"]


def test_no_default_config_keeps_criu_config_file(parse, files):
    inv = parse("check", "--no-default-config", env={"CRIU_CONFIG_FILE": files["env"]})
    assert inv.sources == [files["env"], "argv"]
    assert inv.options.log_file == "env.log" and not inv.options.shell_job


def test_unset_home_skips_the_user_file(parse, files, cfg_env):
    from criu_core.cli.app import parse_command_line

    env = {"CRIU_PY_GLOBAL_CONFIG_DIR": cfg_env["CRIU_PY_GLOBAL_CONFIG_DIR"]}
    inv = parse_command_line(["check"], env=env, host=None)
    assert inv.sources == [files["global"], "argv"]


def test_missing_files_are_ignored(parse, tmp_path):
    inv = parse("check", "--config", str(tmp_path / "nope.conf"), env={"CRIU_CONFIG_FILE": str(tmp_path / "no")})
    assert inv.sources == ["argv"]


def test_unknown_option_in_a_file_is_an_error(parse, tmp_path):
    conf = _write(tmp_path / "bad.conf", "bogus-option\n")
    with pytest.raises(UsageError, match=r"unrecognized option '--bogus-option'"):
        parse("check", env={"CRIU_CONFIG_FILE": conf})


def test_bad_format_in_a_file_is_an_error(parse, tmp_path):
    conf = _write(tmp_path / "bad.conf", "log-file a b\n")
    with pytest.raises(UsageError, match="Unsupported configuration file format"):
        parse("check", "--config", conf)


def test_refusal_names_the_file_that_set_the_option(parse, tmp_path):
    conf = _write(tmp_path / "runc.conf", "tcp-established\n")
    with pytest.raises(UsageError, match=r"--tcp-established \(set in .*runc\.conf\)"):
        parse("dump", "-t", "1", "--config", conf)


def test_plugin_options_in_a_file(parse, tmp_path):
    conf = _write(tmp_path / "c.conf", "allow-uprobes\n")
    assert parse("dump", "-t", "1", "--config", conf).options.allow_uprobes is True


def test_disable_plugin_in_a_file_applies_before_plugins_load(cfg_env, tmp_path):
    from criu_core.cli.app import parse_command_line

    conf = _write(tmp_path / "c.conf", "disable-plugin uprobes\n")
    inv = parse_command_line(["plugins"], env={**cfg_env, "CRIU_CONFIG_FILE": conf})
    assert not inv.host.has_plugin("uprobes")


def test_rpc_config_file_overrides_and_reports_what_it_set(parse, tmp_path):
    inv = parse("check", "-o", "rpc.log", "--leave-running")
    conf = _write(tmp_path / "rpc.conf", "log-file cfg-override.log\nno-leave-running\nallow-uprobes\n")
    changed = apply_rpc_config_file(inv.options, conf, inv.registry)
    assert changed == {"log-file", "leave-running", "allow-uprobes"}
    assert inv.options.log_file == "cfg-override.log" and inv.options.leave_running is False
    assert apply_rpc_config_file(inv.options, str(tmp_path / "missing.conf"), inv.registry) == frozenset()


def test_config_files_in_a_subprocess(run_cli, files, tmp_path):
    # HOME and CRIU_CONFIG_FILE through the real environment; the log lands where the last source said.
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    res = run_cli("check", "-D", str(imgs), env={"CRIU_CONFIG_FILE": files["env"]})
    assert res.returncode == 0, res.stderr
    assert (imgs / "env.log").exists() and not (imgs / "user.log").exists()
    res = run_cli("check", "-D", str(imgs), "--no-default-config")
    assert res.returncode == 0 and res.stdout == "Looks good.\n" and res.stderr == ""
    res = run_cli("check", "-D", str(imgs), "--config", files["cmd"])
    assert res.returncode == 0 and (imgs / "cmd.log").exists()
    bad = _write(tmp_path / "bad.conf", "bogus-option\n")
    res = run_cli("check", env={"CRIU_CONFIG_FILE": bad})
    assert res.returncode == 1 and res.stderr == "criu-py: unrecognized option '--bogus-option'\n"
