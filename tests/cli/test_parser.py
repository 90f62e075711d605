"""getopt_long behaviour of the option parser: short forms, -v, --no-, abbreviations, errors."""

from __future__ import annotations

import pytest

from criu_core.cli.table import IMPLEMENTED
from criu_core.errors import NotImplementedOption, UsageError

SHORT_FORMS = [
    (["-t", "42"], "tree", 42),
    (["-t42"], "tree", 42),
    (["-D", "/imgs"], "images_dir", "/imgs"),
    (["-W", "/work"], "work_dir", "/work"),
    (["-o", "x.log"], "log_file", "x.log"),
    (["-j"], "shell_job", True),
    (["-R"], "leave_running", True),
    (["-s"], "leave_stopped", True),
]


@pytest.mark.parametrize("argv,dest,value", SHORT_FORMS)
def test_dump_short_forms(parse, argv, dest, value):
    inv = parse("dump", *(["-t", "1"] if dest != "tree" else []), *argv)
    assert getattr(inv.options, dest) == value


@pytest.mark.parametrize(
    "argv,dest,value",
    [
        (["-d"], "restore_detached", True),
        (["-d", "-S"], "restore_sibling", True),
        (["-r", "/newroot"], "root", "/newroot"),
        (["-J", "net:/proc/1/ns/net"], "join_ns", ["net:/proc/1/ns/net"]),
        (["-L", "/lib/criu"], "libdir", "/lib/criu"),
        (["-M", "auto"], "ext_mount_map", ["auto"]),
        (["-x"], "ext_unix_sk", True),
        (["-x123"], "ext_unix_sk", "123"),
        (["-l"], "file_locks", True),
    ],
)
def test_restore_short_forms_parse(host, cfg_env, argv, dest, value):
    # Parse only (no validation): some of these are not implemented and would be refused for restore.
    from criu_core.cli.app import install_table
    from criu_core.cli.parser import GetoptParser

    parser = GetoptParser(install_table(host.options))
    opts = parser.defaults()
    assert parser.parse(["restore", *argv], opts) == ["restore"]
    assert getattr(opts, dest) == value


def test_bundled_short_flags(parse):
    inv = parse("dump", "-jRt7")
    assert inv.options.shell_job and inv.options.leave_running and inv.options.tree == 7


@pytest.mark.parametrize(
    "argv,level",
    [
        ([], 2),
        (["-v"], 3),
        (["-vv"], 4),
        (["-vvv"], 5),
        (["-v4"], 4),
        (["-v0"], 0),
        (["--verbosity=3"], 3),
        (["--verbosity"], 3),
        (["-v", "-v"], 4),
        (["-v1", "-v"], 2),
    ],
)
def test_verbosity_forms(parse, argv, level):
    assert parse("check", *argv).options.verbosity == level


def test_verbosity_value_is_not_taken_from_next_word(parse):
    # An optional argument must be attached: "-v 4" is -v then an operand "4" (excessive for check).
    with pytest.raises(UsageError, match="excessive parameter"):
        parse("check", "-v", "4")


def test_long_forms_with_equals_and_space(parse):
    a = parse("dump", "--tree=5", "--images-dir", "/d", "--timeout=3")
    assert (a.options.tree, a.options.images_dir, a.options.timeout) == (5, "/d", 3)


def test_no_prefix_booleans(parse):
    inv = parse("dump", "-t", "1", "--shell-job", "--no-shell-job", "--display-stats")
    assert inv.options.shell_job is False and inv.options.display_stats is True
    inv = parse("restore", "--restore-detached", "--no-restore-detached")
    assert inv.options.restore_detached is False


def test_daemon_is_restore_detached(parse):
    assert parse("restore", "--daemon").options.restore_detached is True


def test_unambiguous_prefix_and_ambiguous_prefix(parse):
    assert parse("dump", "-t", "1", "--leave-r").options.leave_running is True
    with pytest.raises(UsageError, match=r"option '--leave' is ambiguous"):
        parse("dump", "-t", "1", "--leave")


def test_operands_anywhere_and_double_dash(parse, host):
    inv = parse("-t", "3", "dump", "-j")
    assert inv.command == "dump" and inv.options.shell_job
    from criu_core.cli.app import install_table
    from criu_core.cli.parser import GetoptParser

    parser = GetoptParser(install_table(host.options))
    opts = parser.defaults()
    assert parser.parse(["restore", "--exec-cmd", "--", "sh", "-c", "-v"], opts) == ["restore", "sh", "-c", "-v"]
    assert opts.exec_cmd is True and opts.verbosity == 2


@pytest.mark.parametrize(
    "argv,message",
    [
        (["dump", "--bogus-option"], "unrecognized option '--bogus-option'"),
        (["dump", "-q"], "invalid option -- 'q'"),
        (["dump", "--tree"], "option '--tree' requires an argument"),
        (["dump", "-t"], "option requires an argument -- 't'"),
        (["dump", "-t", "1", "--leave-running=yes"], "option '--leave-running' doesn't allow an argument"),
        (["dump", "-t", "abc"], "invalid argument for -t: abc"),
        (["dump", "--tree=0"], "invalid argument for --tree: 0"),
        (["dump", "-t", "1", "--manage-cgroups=bogus"], "invalid argument for --manage-cgroups: bogus"),
        (["restore", "--network-lock", "ipfw"], "invalid argument for --network-lock: ipfw"),
        (["dump"], "-t/--tree PID is required"),
        ([], "command is required"),
        (["frobnicate"], "unknown command: frobnicate"),
        (["check", "extra"], "excessive parameter for command check"),
        (["dump", "-t", "1", "-R", "-s"], "cannot be used together"),
        (["restore", "-S"], "--restore-sibling only makes sense with --restore-detached"),
        (["exec"], 'The "exec" action is deprecated'),
        (["cpuinfo"], "cpuinfo requires an action: dump or check"),
        (["swrk"], "Usage: criu swrk <fd>"),
        (["check", "--ms"], "--ms is deprecated"),
        (["dump", "-t", "1", "--exec-cmd"], "--exec-cmd is available for the restore command only"),
    ],
)
def test_usage_errors(parse, argv, message):
    with pytest.raises(UsageError) as info:
        parse(*argv)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unimplemented_option_is_refused_for_its_command_only(parse):
    with pytest.raises(NotImplementedOption, match="--tcp-established"):
        parse("dump", "-t", "1", "--tcp-established")
    # check does not act on it (runc.conf says tcp-established for every command): accepted.
    assert parse("check", "--tcp-established").options.tcp_established is True
    # Turning it off explicitly is the default: nothing to refuse.
    assert parse("dump", "-t", "1", "--no-tcp-established").options.tcp_established is False


def test_unimplemented_commands_are_recognised(parse):
    for cmd in ("page-server", "lazy-pages", "dedup"):
        with pytest.raises(NotImplementedOption, match=cmd):
            parse(cmd)
    with pytest.raises(NotImplementedOption, match="cpuinfo"):
        parse("cpuinfo", "dump")


def test_implemented_list_names_real_options(host, parse):
    parse("check")  # installs CRIU's table into the host's registry
    assert IMPLEMENTED <= set(host.options.specs), IMPLEMENTED - set(host.options.specs)


# Every long option of CRIU 4.2's getopt table (criu/config.c), --allow-uprobes from the uprobes plugin.
CRIU_LONG_OPTIONS = """tree leave-stopped leave-running restore-detached restore-sibling daemon images-dir work-dir log-file
    join-ns root ext-unix-sk help tcp-established close log-pid version evasive-devices pidfile veth-pair
    action-script link-remap shell-job file-locks page-server address port prev-images-dir ms track-mem
    auto-dedup libdir cpu-cap force-irmap ext-mount-map exec-cmd manage-cgroups cgroup-root inherit-fd feature
    skip-mnt enable-fs enable-external-sharing enable-external-masters freeze-cgroup ghost-limit irmap-scan-path
    lsm-profile timeout external empty-ns lazy-pages extra experimental all cgroup-props cgroup-props-file
    cgroup-dump-controller skip-in-flight deprecated display-stats weak-sysctls status-fd tcp-close verbosity
    ps-socket config no-default-config tls-cacert tls-cacrl tls-cert tls-key tls tls-no-cn-verify cgroup-yard
    pre-dump-mode file-validation skip-file-rwx-check lsm-mount-context network-lock mntns-compat-mode
    unprivileged ghost-fiemap stream allow-uprobes"""


def test_every_criu_long_option_is_known(parse):
    names = CRIU_LONG_OPTIONS.split()
    inv = parse("check")
    parser_names = set(inv.registry.specs) | {"daemon"}
    assert not [n for n in names if n not in parser_names]


def test_plugin_option_comes_from_the_host(parse, host):
    assert parse("dump", "-t", "1", "--allow-uprobes").options.allow_uprobes is True
    from criu_core.plugins import PluginHost

    without = PluginHost(disabled=["uprobes"])
    with pytest.raises(UsageError, match="unrecognized option '--allow-uprobes'"):
        parse("dump", "-t", "1", "--allow-uprobes", host_=without)


def test_disable_plugin_is_collected_before_the_host_is_built(cfg_env):
    from criu_core.cli.app import parse_command_line

    inv = parse_command_line(["--disable-plugin", "uprobes", "--disable-plugin=netns", "plugins"], env=cfg_env)
    assert not inv.host.has_plugin("uprobes") and not inv.host.has_plugin("netns")
    assert inv.host.has_plugin("amdgpu")
    assert inv.options.disable_plugin == ["uprobes", "netns"]


def test_list_options_accumulate(parse):
    inv = parse("check", "--feature", "pidfd_store", "--feature=kcmp")
    assert inv.options.feature == ["pidfd_store", "kcmp"]


def test_sizes_and_optional_values(host, cfg_env):
    from criu_core.cli.app import install_table
    from criu_core.cli.parser import GetoptParser

    parser = GetoptParser(install_table(host.options))
    opts = parser.defaults()
    assert opts.ghost_limit == 1 << 20 and opts.timeout == 10 and opts.images_dir == "."
    parser.parse(["--ghost-limit", "2M", "--manage-cgroups", "--cpu-cap=^fpu,ins"], opts)
    assert opts.ghost_limit == 2 << 20 and opts.manage_cgroups == "soft" and opts.cpu_cap == "^fpu,ins"
    parser.parse(["--manage-cgroups=full"], opts)
    assert opts.manage_cgroups == "full"
    assert parser.given["manage-cgroups"].source == "argv"
