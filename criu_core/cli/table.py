"""CRIU 4.2's option table, as data.

Every long option of ``criu --help`` (CRIU 4.2, ``criu/config.c``) is declared here with its short form, the
commands it matters to and how its value is parsed. Plugins add their own options through ``criu_addoption``
(``--allow-uprobes`` belongs to the uprobes plugin, so ``--disable-plugin uprobes`` makes it unknown).

``IMPLEMENTED`` is the one place that says which options the engines honour: an option missing from it is
still accepted syntactically, and refused with one line when it is set for a command that would need it.
An engine that starts honouring an option adds its name here (and nothing else).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from criu_core.errors import UsageError
from criu_core.options import OptionRegistry, OptionSpec

__all__ = [
    "ALIASES",
    "COMMANDS",
    "DEPRECATED",
    "IMPLEMENTED",
    "IMPLEMENTED_COMMANDS",
    "OPTIONAL_CONST",
    "add_criu_options",
    "parse_size",
]

# Commands of CRIU 4.2 plus ours, with the one-line summary `--help` shows.
COMMANDS: dict[str, str] = {
    "dump": "checkpoint a process/tree identified by pid",
    "pre-dump": "pre-dump task(s) minimizing their frozen time",
    "restore": "restore a process/tree",
    "check": "checks whether the kernel support is up-to-date",
    "page-server": "launch page server",
    "service": "launch service",
    "swrk": "RPC worker on an inherited socket: swrk FD",
    "lazy-pages": "launch lazy-pages daemon",
    "dedup": "remove duplicates in memory dump",
    "cpuinfo": "dump|check: write cpuinfo.img or check it against this CPU",
    "exec": "(deprecated by CRIU; refused)",
    "show": "criu-py: summarise an images directory",
    "decode": "criu-py: image file to JSON (like crit decode)",
    "encode": "criu-py: JSON to image file (like crit encode)",
    "plugins": "criu-py: list loaded plugins and their hooks",
    "demo": "criu-py: a short tour of this build",
}

# Commands whose engines exist (or whose stub answers); others are refused with one line.
IMPLEMENTED_COMMANDS: frozenset[str] = frozenset(
    {"dump", "pre-dump", "restore", "check", "swrk", "service", "show", "decode", "encode", "plugins", "demo"}
)

# Options the engines honour. Flip an option on by adding its long name here.
# fmt: off
IMPLEMENTED: frozenset[str] = frozenset({
    # common
    "images-dir", "work-dir", "log-file", "verbosity", "log-pid", "config", "no-default-config", "pidfile",
    "display-stats", "close", "deprecated", "help", "version",
    # criu-py's own
    "disable-plugin",
    # dump
    "tree", "leave-running", "leave-stopped", "shell-job", "timeout",
    # restore (--daemon is an alias of --restore-detached)
    "restore-detached", "restore-sibling",
    # check
    "feature", "all", "extra", "experimental",
})
# fmt: on

# Long names CRIU accepts as another spelling of an option (BOOL_OPT("daemon", &opts.restore_detach)).
ALIASES: dict[str, str] = {"daemon": "restore-detached"}

# Value of an option with an optional argument given without one (getopt's optional_argument).
OPTIONAL_CONST: dict[str, Any] = {"manage-cgroups": "soft", "cpu-cap": "all", "ext-unix-sk": True}

# Options CRIU 4.2 still parses only to refuse them.
DEPRECATED: dict[str, str] = {"ms": '--ms is deprecated; see "Check options" of criu --help'}

_D = ("dump", "pre-dump")
_R = ("restore",)
_DR = ("dump", "pre-dump", "restore")
_SRV = ("swrk", "service")
_ALL = ("dump", "pre-dump", "restore", "check", "page-server", "lazy-pages", "swrk", "service", "cpuinfo", "dedup")


def parse_size(text: str) -> int:
    """CRIU's ``parse_size``: a number with an optional K, M or G suffix."""
    mult = 1
    for suffix, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if suffix in text:
            mult, text = m, text.replace(suffix, "")
            break
    return int(text) * mult


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _int(text: str) -> int:
    return int(text)


def _choice(*allowed: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in allowed:
            raise ValueError(text)
        return text

    return convert


def _has(sep: str, auto: str | None = None) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if sep not in text and text != auto:
            raise ValueError(text)
        return text

    return convert


def _cpu_cap(text: str) -> str:
    # CRIU's parse_cpu_cap grammar: words fpu|all|none|cpu|ins, '^' inverts, ',' separates.
    rest = text
    while rest:
        if rest[0] in "^,":
            rest = rest[1:]
            continue
        for word in ("fpu", "all", "none", "cpu", "ins"):
            if rest.startswith(word):
                rest = rest[len(word) :]
                break
        else:
            raise UsageError(f"Unknown FPU mode `{text}' selected")
    return text


def _empty_ns(text: str) -> str:
    if text != "net":
        raise UsageError(f"Unsupported empty namespace: {text}")
    return text


# fmt: off
# (long name, kind, short, stages, default, convert, help). kind: flag | value | list | optional.
_TABLE: tuple[tuple[str, str, str | None, tuple[str, ...], Any, Callable[[str], Any] | None, str], ...] = (
    # --- common
    ("images-dir", "value", "D", _ALL, ".", None, "directory for images (default: current directory)"),
    ("work-dir", "value", "W", _ALL, None, None, "directory for logs, pidfiles and stats (default: images dir)"),
    ("log-file", "value", "o", _ALL, None, None, "log file name (relative to the work dir)"),
    ("verbosity", "optional", "v", _ALL, 2, _int,
     "-v[v...] or -vNUM or --verbosity[=NUM]: 0 none, 1 errors, 2 +warnings (default), 3 +info, 4 +debug"),
    ("log-pid", "flag", None, _ALL, False, None, "put the process id on every log line"),
    ("config", "value", None, _ALL, None, None, "read options from FILE (and skip the default config files)"),
    ("no-default-config", "plain", None, _ALL, False, None, "skip /etc/criu/default.conf and ~/.criu/default.conf"),
    ("pidfile", "value", None, _ALL, None, None, "write the root task's (or the daemon's) pid into FILE"),
    ("display-stats", "flag", None, _DR, False, None, "print dump/restore statistics at the end"),
    ("libdir", "value", "L", _DR, None, None, "CRIU plugin directory (criu-py loads plugins by entry point)"),
    ("action-script", "list", None, _DR + _SRV, None, None, "run SCRIPT on action events"),
    ("prev-images-dir", "value", None, _D, None, None, "path to the parent images for incremental dumps"),
    ("unprivileged", "flag", None, _DR, False, None, "accept limitations of running without CAP_SYS_ADMIN"),
    ("enable-fs", "list", None, _D, None, None, "FS[,FS...]: auto-detect mounts of these filesystems"),
    ("stream", "flag", None, _DR, False, None, "dump/restore images through criu-image-streamer"),
    ("close", "list", None, _ALL, None, _int, "close FD before doing anything"),
    ("deprecated", "flag", None, _ALL, False, None, "allow deprecated functionality"),
    ("status-fd", "value", None, ("page-server", "lazy-pages", "service"), None, _int,
     "write \\0 to FD when ready"),
    ("ps-socket", "value", None, _D + ("page-server",), None, _int, "use an inherited page-server socket FD"),
    # --- dump
    ("tree", "value", "t", _D, None, _positive_int, "checkpoint the process tree rooted at PID"),
    ("leave-running", "flag", "R", _D, False, None, "leave tasks running after checkpoint"),
    ("leave-stopped", "flag", "s", _DR, False, None, "leave tasks stopped after checkpoint/restore"),
    ("shell-job", "flag", "j", _DR, False, None, "allow tasks with an external session or tty"),
    ("ext-unix-sk", "optional", "x", _DR, None, None, "allow external unix socket connections"),
    ("file-locks", "flag", "l", _DR, False, None, "handle file locks"),
    ("tcp-established", "flag", None, _DR, False, None, "checkpoint/restore established TCP connections"),
    ("tcp-close", "flag", None, _DR, False, None, "don't dump TCP connections; restore them closed"),
    ("skip-in-flight", "flag", None, _D, False, None, "skip in-flight (half-open) TCP connections"),
    ("external", "list", None, _DR, None, None, "RES: mark a resource as external"),
    ("link-remap", "flag", None, _DR, False, None, "link unlinked files back, if possible"),
    ("ghost-limit", "value", None, _D, 1 << 20, parse_size, "SIZE: largest ghost file to dump (default 1M)"),
    ("ghost-fiemap", "flag", None, _D, True, None, "use FIEMAP to dump sparse ghost files"),
    ("evasive-devices", "flag", None, _DR, False, None, "use any path to a device file if the original is gone"),
    ("force-irmap", "flag", None, _D, False, None, "force resolving names of inotify/fsnotify watches"),
    ("irmap-scan-path", "list", None, _D, None, None, "FILE: where to look for fsnotify watch names"),
    ("timeout", "value", None, _D, 10, _int, "NUM: seconds to collect and freeze tasks (default 10)"),
    ("freeze-cgroup", "value", None, _D, None, None, "use the cgroup freezer at PATH to freeze tasks"),
    ("manage-cgroups", "optional", None, _DR, None, _choice("none", "props", "soft", "full", "strict", "ignore"),
     "[=MODE]: dump/restore cgroups: none, props, soft (default), full, strict, ignore"),
    ("cgroup-root", "list", None, _DR, None, None, "[controller:]/newroot: change the root cgroup"),
    ("cgroup-props", "value", None, _D, None, None, "STRING: cgroup properties to dump"),
    ("cgroup-props-file", "value", None, _D, None, None, "FILE: cgroup properties to dump"),
    ("cgroup-dump-controller", "list", None, _D, None, None, "NAME: dump this controller's properties"),
    ("cgroup-yard", "value", None, _DR, None, None, "PATH: use a prepared cgroup yard"),
    ("page-server", "flag", None, _D, False, None, "send pages to a page server (see --address and --port)"),
    ("address", "value", None, _D + ("page-server", "lazy-pages", "service"), None, None,
     "page server address (service: socket path)"),
    ("port", "value", None, _D + ("page-server", "lazy-pages"), None, _positive_int, "page server port"),
    ("track-mem", "flag", None, _D, False, None, "turn on memory changes tracker in the kernel"),
    ("auto-dedup", "flag", None, _DR, False, None, "deduplicate parent images as new ones are written"),
    ("pre-dump-mode", "value", None, _D, "splice", _choice("splice", "read"), "splice (default) or read"),
    ("lazy-pages", "flag", None, _DR, False, None, "post-copy memory migration"),
    ("network-lock", "value", None, _DR, "iptables", _choice("iptables", "nftables", "skip"),
     "METHOD: iptables (default), nftables or skip"),
    ("file-validation", "value", None, _DR, None, _choice("filesize", "buildid"),
     "METHOD: validate files on restore by filesize or buildid"),
    ("cpu-cap", "optional", None, _DR + ("cpuinfo",), None, _cpu_cap,
     "[=CAP]: CPU capabilities to check: none, fpu, ins, cpu, all (default fpu,ins)"),
    ("ext-mount-map", "list", "M", _DR, None, _has(":", auto="auto"), "KEY:VALUE or auto: external mount mapping"),
    ("skip-mnt", "list", None, _D, None, None, "PATH: ignore this mount"),
    ("enable-external-sharing", "plain", None, _DR, False, None, "allow external mounts with shared propagation"),
    ("enable-external-masters", "plain", None, _DR, False, None, "allow external mounts with slave propagation"),
    ("empty-ns", "value", None, _DR, None, _empty_ns, "net: create this namespace empty on restore"),
    ("weak-sysctls", "flag", None, _R, False, None, "skip restoring sysctls missing on this kernel"),
    ("skip-file-rwx-check", "flag", None, _R, False, None, "skip checking file permissions on restore"),
    ("mntns-compat-mode", "flag", None, _R, False, None, "use the old mount-namespace restore engine"),
    ("tls-cacert", "value", None, _D + ("page-server", "lazy-pages"), None, None, "FILE: TLS trust anchors"),
    ("tls-cacrl", "value", None, _D + ("page-server", "lazy-pages"), None, None, "FILE: TLS revocation list"),
    ("tls-cert", "value", None, _D + ("page-server", "lazy-pages"), None, None, "FILE: TLS certificate"),
    ("tls-key", "value", None, _D + ("page-server", "lazy-pages"), None, None, "FILE: TLS private key"),
    ("tls", "flag", None, _D + ("page-server", "lazy-pages"), False, None, "use TLS for page-server traffic"),
    ("tls-no-cn-verify", "plain", None, _D + ("page-server", "lazy-pages"), False, None,
     "don't verify the server's certificate common name"),
    # --- restore
    ("restore-detached", "flag", "d", _R + ("service", "page-server", "lazy-pages"), False, None,
     "detach after restore (service: run as a daemon)"),
    ("restore-sibling", "flag", "S", _R, False, None, "restore the root task as a sibling (with -d)"),
    ("root", "value", "r", _R, None, None, "PATH: change the root filesystem"),
    ("inherit-fd", "list", None, _R, None, _has(":"), "fd[NUM]:RES: use an inherited descriptor for RES"),
    ("join-ns", "list", "J", _R, None, _has(":"), "NS:{PID|NS_FILE}[,OPTS]: join an existing namespace"),
    ("veth-pair", "list", None, _R, None, _has("="), "IN=OUT: map a veth device inside to one outside"),
    ("exec-cmd", "plain", None, _R, False, None, "exec the command given after the restore command"),
    ("lsm-profile", "value", None, _R, None, _has(":"), "TYPE:NAME: restore with this LSM profile"),
    ("lsm-mount-context", "value", None, _R, None, None, "CTX: SELinux mount context for restored mounts"),
    # --- check
    ("feature", "list", None, ("check",), None, None, "FEAT: check one feature (list: lists them)"),
    ("extra", "flag", None, ("check",), False, None, "also check extra features"),
    ("experimental", "flag", None, ("check",), False, None, "also check experimental features"),
    ("all", "plain", None, ("check",), False, None, "check everything, extra and experimental included"),
    # --- deprecated, parsed to be refused
    ("ms", "plain", None, _ALL, False, None, "deprecated"),
    ("help", "plain", "h", _ALL, False, None, "print this help and exit"),
    ("version", "plain", "V", _ALL, False, None, "print the version and exit"),
    # --- criu-py's own
    ("disable-plugin", "list", None, _ALL, None, None, "NAME: do not load plugin NAME (repeatable)"),
)
# fmt: on


def add_criu_options(registry: OptionRegistry) -> None:
    """Add CRIU's table to ``registry`` (the PluginHost's, which already holds the plugins' options).

    ``plain`` options are flags CRIU declares without a ``no-`` twin; the registry's flags accept ``--no-NAME``
    for every flag, which is a harmless superset.
    """
    for name, kind, short, stages, default, convert, help_ in _TABLE:
        if kind in ("flag", "plain"):
            spec = OptionSpec(name, "flag", short, stages, help_, default, None, name in IMPLEMENTED)
        elif kind == "optional":
            spec = OptionSpec(
                name, "value", short, stages, help_, default, convert, name in IMPLEMENTED, optional_arg=True
            )
        elif kind == "list":
            spec = OptionSpec(name, "list", short, stages, help_, [], convert, name in IMPLEMENTED)
        else:
            spec = OptionSpec(name, "value", short, stages, help_, default, convert, name in IMPLEMENTED)
        registry.add(spec)
