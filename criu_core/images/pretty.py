"""How crit shows fields in ``--pretty`` JSON, kept as data instead of proto field options.

CRIU annotates its .proto files with ``(criu).hex/flags/dict/dev/odev/ipadd/conv``; our protos carry no
options, so the same hints live here keyed by ``(message name, field name)``. A ``hex`` mark on a message
field makes every integer inside that message hex too (gpregs), as in crit.

``conv`` (quoted-printable unix socket names) applies in plain mode as well: crit does that, and keeping the
same JSON lets crit and criu-py read each other's output.
"""

from __future__ import annotations

from criu_core.images.vma import VMA_STATUS_NAMES

__all__ = ["FIELD_HINTS", "FLAG_MAPS", "GEN_MAPS", "SK_MAPS", "TASK_STATE_CRIT", "map_flags", "unmap_flags"]

# (message, field) -> set of hints; "flags:<map>", "dict:<map>", "conv:<name>" carry a parameter.
_H = {
    "bpfmap_file_entry": {"flags": "flags:rfile.flags"},
    "criu_core_page_range": {"vaddr": "hex"},  # criu-core's own image (criu-core-PID.img)
    "criu_core_vma_name": {"start": "hex"},
    "fanotify_file_entry": {"flags": "hex", "faflags": "hex", "evflags": "hex"},
    "fanotify_mark_entry": {"mflags": "hex", "mask": "hex", "ignored_mask": "hex", "s_dev": "dev"},
    "ghost_file_entry": {"dev": "dev", "rdev": "dev odev"},
    "inet_sk_entry": {
        "family": "dict:sk",
        "type": "dict:sk",
        "proto": "dict:sk",
        "state": "dict:sk",
        "flags": "hex",
        "src_addr": "ipadd",
        "dst_addr": "ipadd",
    },
    "inotify_file_entry": {"flags": "hex"},
    "inotify_wd_entry": {"mask": "hex", "ignored_mask": "hex", "s_dev": "dev"},
    "irmap_cache_entry": {"dev": "dev odev"},
    "memfd_file_entry": {"flags": "flags:rfile.flags"},
    "memfd_inode_entry": {"seals": "flags:seals.flags"},
    "mm_entry": {
        name: "hex"
        for name in [
            "mm_start_code",
            "mm_end_code",
            "mm_start_data",
            "mm_end_data",
            "mm_start_stack",
            "mm_start_brk",
            "mm_brk",
            "mm_arg_start",
            "mm_arg_end",
            "mm_env_start",
            "mm_env_end",
        ]
    },
    "mnt_entry": {"root_dev": "dev", "flags": "hex", "sb_flags": "hex"},
    "net_device_entry": {"flags": "hex"},
    "netlink_sk_entry": {"flags": "hex"},
    "packet_sock_entry": {"flags": "hex"},
    "pagemap_entry": {"vaddr": "hex", "flags": "flags:pmap.flags"},
    "pipe_entry": {"flags": "hex"},
    "reg_file_entry": {"flags": "flags:rfile.flags"},
    "sa_entry": {"sigaction": "hex", "flags": "hex", "restorer": "hex", "mask": "hex", "mask_extended": "hex"},
    "signalfd_entry": {"flags": "hex", "sigmask": "hex"},
    "sit_entry": {"local": "ipadd", "remote": "ipadd", "rd_prefix": "ipadd", "relay_prefix": "ipadd"},
    # task_state: crit labels 1 "Alive" (right), 3 "Zombie" and 6 "Stopped" (both wrong: 3 is STOPPED). We
    # show "Alive" and plain numbers for the rest, and accept all of crit's labels on encode.
    "task_core_entry": {"task_state": "dict:gen", "blk_sigset": "hex", "blk_sigset_extended": "hex"},
    "tcp_stream_entry": {"opt_mask": "hex"},
    "thread_info_aarch64": {"clear_tid_addr": "hex", "gpregs": "hex"},
    "thread_info_arm": {"clear_tid_addr": "hex", "gpregs": "hex"},
    "thread_info_mips": {"clear_tid_addr": "hex", "gpregs": "hex", "fpregs": "hex"},
    "thread_info_ppc64": {"clear_tid_addr": "hex", "gpregs": "hex"},
    "thread_info_s390": {
        name: "hex"
        for name in ["clear_tid_addr", "gpregs", "fpregs", "vxrs_low", "vxrs_high", "gs_cb", "gs_bc", "ri_cb"]
    },
    "thread_info_x86": {"clear_tid_addr": "hex", "gpregs": "hex"},
    "timerfd_entry": {"flags": "hex", "settime_flags": "hex"},
    "tty_file_entry": {"flags": "hex"},
    "tun_link_entry": {"flags": "hex"},
    "unix_sk_entry": {
        "type": "dict:sk",
        "state": "dict:sk",
        "flags": "hex",
        "uflags": "hex",
        "name": "conv:unix_name",
    },
    "vma_entry": {
        "start": "hex",
        "end": "hex",
        "prot": "flags:mmap.prot",
        "flags": "flags:mmap.flags",
        "status": "flags:mmap.status",
        "madv": "hex",
        "fdflags": "hex",
    },
}

FIELD_HINTS: dict[tuple[str, str], frozenset[str]] = {
    (msg, fld): frozenset(hints.split()) for msg, fields in _H.items() for fld, hints in fields.items()
}

FLAG_MAPS: dict[str, tuple[tuple[str, int], ...]] = {
    "mmap.prot": (("PROT_READ", 0x1), ("PROT_WRITE", 0x2), ("PROT_EXEC", 0x4)),
    "mmap.flags": (("MAP_SHARED", 0x1), ("MAP_PRIVATE", 0x2), ("MAP_ANON", 0x20), ("MAP_GROWSDOWN", 0x100)),
    "mmap.status": VMA_STATUS_NAMES,
    "rfile.flags": (
        ("O_WRONLY", 0o1),
        ("O_RDWR", 0o2),
        ("O_CREAT", 0o100),
        ("O_EXCL", 0o200),
        ("O_NOCTTY", 0o400),
        ("O_TRUNC", 0o1000),
        ("O_APPEND", 0o2000),
        ("O_NONBLOCK", 0o4000),
        ("O_DSYNC", 0o10000),
        ("FASYNC", 0o20000),
        ("O_DIRECT", 0o40000),
        ("O_LARGEFILE", 0o100000),
        ("O_DIRECTORY", 0o200000),
        ("O_NOFOLLOW", 0o400000),
        ("O_NOATIME", 0o1000000),
        ("O_CLOEXEC", 0o2000000),
    ),
    "pmap.flags": (("PE_PARENT", 1), ("PE_LAZY", 2), ("PE_PRESENT", 4)),
    "seals.flags": (
        ("F_SEAL_SEAL", 0x1),
        ("F_SEAL_SHRINK", 0x2),
        ("F_SEAL_GROW", 0x4),
        ("F_SEAL_WRITE", 0x8),
        ("F_SEAL_FUTURE_WRITE", 0x10),
    ),
}

GEN_MAPS: dict[str, dict[int, str]] = {"task_state": {1: "Alive"}}

SK_MAPS: dict[str, dict[int, str]] = {
    "family": {1: "UNIX", 2: "INET", 10: "INET6", 16: "NETLINK", 17: "PACKET"},
    "type": {1: "STREAM", 2: "DGRAM", 3: "RAW", 5: "SEQPACKET", 10: "PACKET"},
    "state": {
        1: "ESTABLISHED",
        2: "SYN_SENT",
        3: "SYN_RECV",
        4: "FIN_WAIT1",
        5: "FIN_WAIT2",
        6: "TIME_WAIT",
        7: "CLOSE",
        8: "CLOSE_WAIT",
        9: "LAST_ACK",
        10: "LISTEN",
    },
    "proto": {0: "IP", 6: "TCP", 17: "UDP", 136: "UDPLITE"},
}

# crit's task_state labels, accepted on encode only so that crit's pretty JSON still encodes to what crit
# meant (its "Zombie" is 3 and its "Stopped" is 6).
TASK_STATE_CRIT: dict[str, int] = {"Alive": 1, "Zombie": 3, "Stopped": 6}


def map_flags(value: int, flag_map: tuple[tuple[str, int], ...]) -> str:
    """``"PROT_READ | PROT_EXEC"``; bits without a name are appended as one hex number; 0 gives ``""``."""
    names = [name for name, bit in flag_map if value & bit]
    rest = value & ~sum(bit for _, bit in flag_map)
    if rest:
        names.append(f"0x{rest:x}")
    return " | ".join(names)


def unmap_flags(text: str, flag_map: tuple[tuple[str, int], ...]) -> int:
    """Inverse of :func:`map_flags`; also accepts numbers (``"0x10 | PROT_READ"``). Raises ValueError."""
    if text.strip() == "":
        return 0
    table = dict(flag_map)
    value = 0
    for part in text.split("|"):
        part = part.strip()
        value |= table[part] if part in table else int(part, 0)
    return value
