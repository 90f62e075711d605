"""``criu_opts`` (an RPC request's options) onto criu-py's :class:`~criu_core.options.Options`.

Mirrors ``cr-service.c:setup_opts_from_req`` field by field: each RPC field sets the command-line option with
the same meaning, so everything after this point (refusing what is not implemented, the engines) is shared
with the command line. Fields that name client descriptors (``images_dir_fd``, ``work_dir_fd``,
``status_fd``), the log settings, ``pid``, ``notify_scripts`` and ``config_file`` are handled by
:mod:`criu_core.service.setup`, not here.

:func:`apply_rpc_opts` returns, for every option it set, the RPC field that set it, so a refusal can say
``--tcp-established (RPC field tcp_established)``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from criu_core.errors import UsageError

__all__ = ["BadRequest", "apply_rpc_opts"]

CLONE_NEWNET = 0x40000000

# Boolean fields that map one to one onto a flag: RPC field -> long option.
_FLAGS: dict[str, str] = {
    "leave_running": "leave-running",
    "leave_stopped": "leave-stopped",
    "tcp_established": "tcp-established",
    "tcp_skip_in_flight": "skip-in-flight",
    "tcp_close": "tcp-close",
    "weak_sysctls": "weak-sysctls",
    "evasive_devices": "evasive-devices",
    "shell_job": "shell-job",
    "skip_file_rwx_check": "skip-file-rwx-check",
    "file_locks": "file-locks",
    "track_mem": "track-mem",
    "link_remap": "link-remap",
    "auto_dedup": "auto-dedup",
    "force_irmap": "force-irmap",
    "lazy_pages": "lazy-pages",
    "ext_sharing": "enable-external-sharing",
    "ext_masters": "enable-external-masters",
    "display_stats": "display-stats",
    "unprivileged": "unprivileged",
    "mntns_compat_mode": "mntns-compat-mode",
    "tls": "tls",
    "tls_no_cn_verify": "tls-no-cn-verify",
}

# String fields set only when present: RPC field -> long option.
_STRINGS: dict[str, str] = {
    "root": "root",
    "parent_img": "prev-images-dir",
    "freeze_cgroup": "freeze-cgroup",
    "lsm_profile": "lsm-profile",
    "lsm_mount_context": "lsm-mount-context",
    "cgroup_props": "cgroup-props",
    "cgroup_props_file": "cgroup-props-file",
    "cgroup_yard": "cgroup-yard",
    "tls_cacert": "tls-cacert",
    "tls_cacrl": "tls-cacrl",
    "tls_cert": "tls-cert",
    "tls_key": "tls-key",
}

# Repeated strings: RPC field -> long option (values appended, as repeated command-line options).
_LISTS: dict[str, str] = {
    "external": "external",
    "enable_fs": "enable-fs",
    "skip_mnt": "skip-mnt",
    "irmap_scan_paths": "irmap-scan-path",
    "cgroup_dump_controller": "cgroup-dump-controller",
}

_CG_MODES = {0: None, 1: "none", 2: "props", 3: "soft", 4: "full", 5: "strict", 6: "soft"}
_NETWORK_LOCK = {1: "iptables", 2: "nftables", 3: "skip"}
_PRE_DUMP_MODE = {1: "splice", 2: "read"}
# criu/include/cpu.h: CPU_CAP_FPU 1, CPU_CAP_CPU 2, CPU_CAP_INS 4 (CPU_CAP_ALL 7, CPU_CAP_IMAGE 0x10).
_CPU_CAP_BITS = ((1, "fpu"), (2, "cpu"), (4, "ins"))


class BadRequest(UsageError):
    """The request's options are wrong or not allowed here (CRIU answers ``cr_errno`` EBADRQC)."""

    cr_errno = errno.EBADRQC


def _cpu_cap(value: int) -> str:
    if value & 7 == 7:
        return "all"
    words = [name for bit, name in _CPU_CAP_BITS if value & bit]
    return ",".join(words) or "none"


class _Setter:
    def __init__(self, options: Any) -> None:
        self.options = options
        self.given: dict[str, str] = {}

    def set(self, option: str, value: Any, field: str) -> None:
        setattr(self.options, option.replace("-", "_"), value)
        self.given[option] = field

    def append(self, option: str, values: list[Any], field: str) -> None:
        if not values:
            return
        dest = option.replace("-", "_")
        current = list(getattr(self.options, dest, None) or [])
        setattr(self.options, dest, current + list(values))
        self.given[option] = field


def apply_rpc_opts(msg: Any, options: Any, *, swrk: bool) -> dict[str, str]:
    """Apply ``msg`` (a ``criu_opts``) over ``options``; return ``{long option: RPC field}`` for what it set.

    ``swrk`` is False in service mode, where ``rst_sibling``, ``inherit_fd`` and ``ps.fd`` are refused as CRIU
    refuses them. Raises :class:`BadRequest`.
    """
    s = _Setter(options)
    has: Callable[[str], bool] = msg.HasField
    for field, option in _FLAGS.items():
        if has(field):
            s.set(option, bool(getattr(msg, field)), field)
    if getattr(options, "leave_running", False) and getattr(options, "leave_stopped", False):
        # CRIU applies leave_running, then leave_stopped: the last one wins.
        s.set("leave-running", False, "leave_stopped")
    for field, option in _STRINGS.items():
        if has(field):
            s.set(option, getattr(msg, field), field)
    for field, option in _LISTS.items():
        s.append(option, list(getattr(msg, field)), field)

    if has("ext_unix_sk") and msg.ext_unix_sk:
        s.set("ext-unix-sk", True, "ext_unix_sk")
    if has("rst_sibling"):
        if not swrk:
            raise BadRequest("rst_sibling is not allowed in standalone service")
        s.set("restore-sibling", bool(msg.rst_sibling), "rst_sibling")
    if len(msg.inherit_fd):
        if not swrk:
            raise BadRequest("inherit_fd is not allowed in standalone service")
        s.append("inherit-fd", [f"fd[{i.fd}]:{i.key}" for i in msg.inherit_fd], "inherit_fd")
    if len(msg.exec_cmd):
        s.set("exec-cmd", True, "exec_cmd")
        options.exec_cmd_argv = list(msg.exec_cmd)
    if has("pre_dump_mode"):
        if msg.pre_dump_mode not in _PRE_DUMP_MODE:
            raise BadRequest(f"bad pre_dump_mode {msg.pre_dump_mode}")
        s.set("pre-dump-mode", _PRE_DUMP_MODE[msg.pre_dump_mode], "pre_dump_mode")
    if has("network_lock"):
        if msg.network_lock not in _NETWORK_LOCK:
            raise BadRequest(f"bad network_lock {msg.network_lock}")
        s.set("network-lock", _NETWORK_LOCK[msg.network_lock], "network_lock")
    if has("ps"):
        _page_server(s, msg.ps, swrk)
    s.append("veth-pair", [f"{v.if_in}={v.if_out}" for v in msg.veths], "veths")
    s.append("ext-mount-map", [f"{m.key}:{m.val}" for m in msg.ext_mnt], "ext_mnt")
    s.append(
        "join-ns",
        [f"{j.ns}:{j.ns_file}" + (f",{j.extra_opt}" if j.HasField("extra_opt") else "") for j in msg.join_ns],
        "join_ns",
    )
    s.append("cgroup-root", [f"{c.ctrl}:{c.path}" if c.ctrl else c.path for c in msg.cg_root], "cg_root")
    if has("cpu_cap"):
        s.set("cpu-cap", _cpu_cap(msg.cpu_cap), "cpu_cap")
    # manage_cgroups=true means soft mode (CRIU's backward compatibility); an explicit mode overrides it.
    # IGNORE is what criu-py does anyway, so it sets nothing that would be refused.
    mode = None
    if has("manage_cgroups"):
        mode = "soft" if msg.manage_cgroups else None
    if has("manage_cgroups_mode"):
        if msg.manage_cgroups_mode not in _CG_MODES:
            raise BadRequest(f"bad manage_cgroups_mode {msg.manage_cgroups_mode}")
        mode = _CG_MODES[msg.manage_cgroups_mode]
    if mode is not None:
        s.set("manage-cgroups", mode, "manage_cgroups_mode" if has("manage_cgroups_mode") else "manage_cgroups")
    if has("auto_ext_mnt") and msg.auto_ext_mnt:
        s.append("ext-mount-map", ["auto"], "auto_ext_mnt")
    if has("timeout"):
        s.set("timeout", int(msg.timeout), "timeout")
    if has("ghost_limit"):
        s.set("ghost-limit", int(msg.ghost_limit), "ghost_limit")
    if has("empty_ns") and msg.empty_ns:
        if msg.empty_ns & ~CLONE_NEWNET:
            raise BadRequest(f"empty_ns {msg.empty_ns:#x}: only CLONE_NEWNET is allowed")
        s.set("empty-ns", "net", "empty_ns")
    if has("orphan_pts_master") and msg.orphan_pts_master:
        # RPC-only (no command-line twin): a pty master for an inherited slave is sent back over the socket.
        # It matters only for tasks with such a pty, which the engines refuse on their own.
        options.orphan_pts_master = True
    if has("pidfd_store_sk"):
        raise BadRequest("pidfd_store_sk is not supported by criu-py (no pre-dump, FEATURE_CHECK says so)")
    return s.given


def _page_server(s: _Setter, ps: Any, swrk: bool) -> None:
    if ps.HasField("address"):
        s.set("address", ps.address, "ps")
    if ps.HasField("port"):
        s.set("port", int(ps.port), "ps")
    if not getattr(s.options, "lazy_pages", False):
        s.set("page-server", True, "ps")
        if ps.HasField("fd"):
            if not swrk:
                raise BadRequest("ps.fd is not allowed in standalone service")
            s.set("ps-socket", int(ps.fd), "ps")
