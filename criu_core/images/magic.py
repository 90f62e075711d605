"""The image table: every CRIU 4.2 image name, its magic, its message and how it is framed.

Facts from CRIU 4.2's magic.h / image-desc.c as summarised in reference/criu-images-and-rpc.md §1.6. Pure data,
no protobuf import: the CLI consults it at start-up.

* ``kind`` says how the file starts: ``common`` (``IMG_COMMON`` then the image magic), ``service``
  (``IMG_SERVICE`` then the magic: stats and irmap cache), ``inventory`` (only its own magic) or ``raw`` (no
  header at all: pages, ip/iptables dumps, tarballs).
* ``message`` names the protobuf message as ``"<proto module>.<message>"`` (``"core.core_entry"`` lives in
  ``criu_core.images.pb.core_pb2``); ``None`` for raw images.
* ``extra`` names the handler for bytes that follow each entry (§1.3), ``"pagemap"`` for head-then-entries.

Several names share one magic value (PAGEMAP = SHMEM_PAGEMAP = PAGES_OLD = SHM_PAGES_OLD, SIGNAL = PSIGNAL,
BINFMT_MISC = BINFMT_MISC_OLD); :data:`BY_MAGIC` maps a value back to the canonical name, as crit does.

One entry is not CRIU's: ``CRIU_CORE_TASK`` (``criu-core-PID.img``), criu-core's own per-task image.
"""

from __future__ import annotations

from typing import Literal

from criu_core.records import dataclass

__all__ = [
    "BY_MAGIC",
    "BY_NAME",
    "CRIU_CORE_TASK_MAGIC",
    "CRTOOLS_IMAGES_V1",
    "CRTOOLS_IMAGES_V1_1",
    "IMAGES",
    "IMG_COMMON_MAGIC",
    "IMG_SERVICE_MAGIC",
    "KDAT_MAGIC",
    "RAW_IMAGE_MAGIC",
    "ImageType",
    "Kind",
    "by_magic",
    "by_name",
    "filename_for",
    "type_for_filename",
]

IMG_COMMON_MAGIC = 0x54564319
IMG_SERVICE_MAGIC = 0x55105940
RAW_IMAGE_MAGIC = 0
KDAT_MAGIC = 0x57023458  # kerndat cache, not an image
CRIU_CORE_TASK_MAGIC = 0x4F435243  # criu-core's own image criu-core-PID.img; collides with no CRIU magic
CRTOOLS_IMAGES_V1 = 1
CRTOOLS_IMAGES_V1_1 = 2

Kind = Literal["common", "service", "inventory", "raw"]


@dataclass(frozen=True)
class ImageType:
    """One kind of image file.

    ``pattern`` is the file name with ``{}`` where CRIU puts the pid/id (``"core-{}.img"``); ``id_format`` is
    ``"d"`` or ``"x"`` (tcp-stream and ghost-file names use hex).
    """

    name: str
    magic: int
    kind: Kind
    message: str | None
    pattern: str | None = None
    extra: str | None = None
    id_format: str = "d"

    @property
    def head(self) -> bytes:
        """The bytes every file of this type starts with (empty for raw images)."""
        le = lambda v: v.to_bytes(4, "little")
        if self.kind == "raw":
            return b""
        if self.kind == "inventory":
            return le(self.magic)
        return le(IMG_SERVICE_MAGIC if self.kind == "service" else IMG_COMMON_MAGIC) + le(self.magic)


def _t(name, magic, message, pattern=None, extra=None, kind: Kind = "common", id_format="d") -> ImageType:
    return ImageType(name, magic, kind, message, pattern, extra, id_format)


# Canonical names first: BY_MAGIC keeps the first name seen for a value.
IMAGES: tuple[ImageType, ...] = (
    _t("INVENTORY", 0x58313116, "inventory.inventory_entry", "inventory.img", kind="inventory"),
    _t("PSTREE", 0x50273030, "pstree.pstree_entry", "pstree.img"),
    _t("CORE", 0x55053847, "core.core_entry", "core-{}.img"),
    _t("IDS", 0x54432030, "core.task_kobj_ids_entry", "ids-{}.img"),
    _t("MM", 0x57492820, "mm.mm_entry", "mm-{}.img"),
    _t("VMAS", 0x54123737, "vma.vma_entry", "vmas-{}.img"),
    _t("PAGEMAP", 0x56084025, "pagemap.pagemap_entry", "pagemap-{}.img", extra="pagemap"),
    _t("SHMEM_PAGEMAP", 0x56084025, "pagemap.pagemap_entry", "pagemap-shmem-{}.img", extra="pagemap"),
    _t("PAGES_OLD", 0x56084025, "pagemap.pagemap_entry", None, extra="pagemap"),
    _t("SHM_PAGES_OLD", 0x56084025, "pagemap.pagemap_entry", "pages-shmem-{}.img", extra="pagemap"),
    _t("PAGES", RAW_IMAGE_MAGIC, None, "pages-{}.img", kind="raw"),
    _t("FS", 0x51403912, "fs.fs_entry", "fs-{}.img"),
    _t("FDINFO", 0x56213732, "fdinfo.fdinfo_entry", "fdinfo-{}.img"),
    _t("FILES", 0x56303138, "fdinfo.file_entry", "files.img"),
    _t("REG_FILES", 0x50363636, "regfile.reg_file_entry", "reg-files.img"),
    _t("EXT_FILES", 0x59255641, "ext_file.ext_file_entry", "ext-files.img"),
    _t("NS_FILES", 0x61394011, "ns.ns_file_entry", "ns-files.img"),
    _t("PIPES", 0x56513555, "pipe.pipe_entry", "pipes.img"),
    _t("PIPES_DATA", 0x56453709, "pipe_data.pipe_data_entry", "pipes-data.img", extra="pipe_data"),
    _t("FIFO", 0x58364939, "fifo.fifo_entry", "fifo.img"),
    _t("FIFO_DATA", 0x59333054, "pipe_data.pipe_data_entry", "fifo-data.img", extra="pipe_data"),
    _t("UNIXSK", 0x54373943, "sk_unix.unix_sk_entry", "unixsk.img"),
    _t("INETSK", 0x56443851, "sk_inet.inet_sk_entry", "inetsk.img"),
    _t("PACKETSK", 0x60454618, "packet_sock.packet_sock_entry", "packetsk.img"),
    _t("NETLINK_SK", 0x58005614, "sk_netlink.netlink_sk_entry", "netlinksk.img"),
    _t("SK_QUEUES", 0x56264026, "sk_packet.sk_packet_entry", "sk-queues.img", extra="sk_queues"),
    _t("TCP_STREAM", 0x51465506, "tcp_stream.tcp_stream_entry", "tcp-stream-{}.img", extra="tcp_stream", id_format="x"),
    _t("EVENTFD_FILE", 0x44523722, "eventfd.eventfd_file_entry", "eventfd.img"),
    _t("EVENTPOLL_FILE", 0x45023858, "eventpoll.eventpoll_file_entry", "eventpoll.img"),
    _t("EVENTPOLL_TFD", 0x44433746, "eventpoll.eventpoll_tfd_entry", "eventpoll-tfd.img"),
    _t("SIGNALFD", 0x57323820, "signalfd.signalfd_entry", "signalfd.img"),
    _t("TIMERFD", 0x50493712, "timerfd.timerfd_entry", "timerfd.img"),
    _t("INOTIFY_FILE", 0x48424431, "fsnotify.inotify_file_entry", "inotify.img"),
    _t("INOTIFY_WD", 0x54562009, "fsnotify.inotify_wd_entry", "inotify-wd.img"),
    _t("FANOTIFY_FILE", 0x55096122, "fsnotify.fanotify_file_entry", "fanotify.img"),
    _t("FANOTIFY_MARK", 0x56506035, "fsnotify.fanotify_mark_entry", "fanotify-mark.img"),
    _t("MEMFD_INODE", 0x48453499, "memfd.memfd_inode_entry", "memfd.img"),
    _t("TTY_FILES", 0x59433025, "tty.tty_file_entry", "tty.img"),
    _t("TTY_INFO", 0x59453036, "tty.tty_info_entry", "tty-info.img"),
    _t("TTY_DATA", 0x59413026, "tty.tty_data_entry", "tty-data.img"),
    _t("TUNFILE", 0x57143751, "tun.tunfile_entry", "tunfile.img"),
    _t("REMAP_FPATH", 0x59133954, "remap_file_path.remap_file_path_entry", "remap-fpath.img"),
    _t("GHOST_FILE", 0x52583605, "ghost_file.ghost_file_entry", "ghost-file-{}.img", extra="ghost_file", id_format="x"),
    _t("FILE_LOCKS", 0x54323616, "file_lock.file_lock_entry", "filelocks.img"),
    _t("SIGACT", 0x55344201, "sa.sa_entry", "sigacts-{}.img"),
    _t("CREDS", 0x54023547, "creds.creds_entry", "creds-{}.img"),
    _t("RLIMIT", 0x57113925, "rlimit.rlimit_entry", "rlimit-{}.img"),
    _t("ITIMERS", 0x57464056, "timer.itimer_entry", "itimers-{}.img"),
    _t("POSIX_TIMERS", 0x52603957, "timer.posix_timer_entry", "posix-timers-{}.img"),
    _t("SIGNAL", 0x59255647, "siginfo.siginfo_entry", "signal-s-{}.img"),
    _t("PSIGNAL", 0x59255647, "siginfo.siginfo_entry", "signal-p-{}.img"),
    _t("SECCOMP", 0x64413049, "seccomp.seccomp_entry", "seccomp.img"),
    _t("TIMENS", 0x43114433, "timens.timens_entry", "timens-{}.img"),
    _t("CGROUP", 0x59383330, "cgroup.cgroup_entry", "cgroup.img"),
    _t("MNTS", 0x55563928, "mnt.mnt_entry", "mountpoints-{}.img"),
    _t("UTSNS", 0x54473203, "utsns.utsns_entry", "utsns-{}.img"),
    _t("IPC_VAR", 0x53115007, "ipc_var.ipc_var_entry", "ipcns-var-{}.img"),
    _t("IPCNS_SHM", 0x46283044, "ipc_shm.ipc_shm_entry", "ipcns-shm-{}.img", extra="ipc_shm"),
    _t("IPCNS_MSG", 0x55453737, "ipc_msg.ipc_msg_entry", "ipcns-msg-{}.img", extra="ipc_msg"),
    _t("IPCNS_SEM", 0x59573019, "ipc_sem.ipc_sem_entry", "ipcns-sem-{}.img", extra="ipc_sem"),
    _t("USERNS", 0x55474906, "userns.userns_entry", "userns-{}.img"),
    _t("PIDNS", 0x61157326, "pidns.pidns_entry", "pidns-{}.img"),
    _t("NETNS", 0x55933752, "netdev.netns_entry", "netns-{}.img"),
    _t("NETDEV", 0x57373951, "netdev.net_device_entry", "netdev-{}.img"),
    _t("AUTOFS", 0x49353943, "autofs.autofs_entry", "autofs-{}.img"),
    _t("BINFMT_MISC", 0x67343323, "binfmt_misc.binfmt_misc_entry", "binfmt-misc.img"),
    _t("BINFMT_MISC_OLD", 0x67343323, "binfmt_misc.binfmt_misc_entry", "binfmt-misc-{}.img"),
    _t("CPUINFO", 0x61404013, "cpuinfo.cpuinfo_entry", "cpuinfo.img"),
    _t("BPFMAP_FILE", 0x57506142, "bpfmap_file.bpfmap_file_entry", "bpfmap-file.img"),
    _t("BPFMAP_DATA", 0x64324033, "bpfmap_data.bpfmap_data_entry", "bpfmap-data.img", extra="bpfmap_data"),
    _t("APPARMOR", 0x59423047, "apparmor.apparmor_entry", "apparmor.img"),
    # pidfd payloads are not modelled yet (their proto changed after 4.2); entries still frame and round-trip.
    _t("PIDFD", 0x54435556, None, "pidfd.img"),
    # criu-core's own per-task image, not CRIU's (DESIGN.md promise 1: CRIU's messages are never extended):
    # what a task has beyond CRIU 4.2's images, written only when there is some. Its magic is no CRIU magic
    # (the file starts "CRCO" after IMG_COMMON), so CRIU and crit refuse the file rather than misread it.
    _t("CRIU_CORE_TASK", CRIU_CORE_TASK_MAGIC, "criu_core_task.criu_core_task_entry", "criu-core-{}.img"),
    _t("STATS", 0x57093306, "stats.stats_entry", "stats-{}", kind="service"),
    _t("IRMAP_CACHE", 0x57004059, "fh.irmap_cache_entry", "irmap-cache", kind="service"),
    # Raw images: no header, content written by external tools (ip, iptables-save, nft, tar).
    _t("IFADDR", RAW_IMAGE_MAGIC, None, "ifaddr-{}.img", kind="raw"),
    _t("ROUTE", RAW_IMAGE_MAGIC, None, "route-{}.img", kind="raw"),
    _t("ROUTE6", RAW_IMAGE_MAGIC, None, "route6-{}.img", kind="raw"),
    _t("RULE", RAW_IMAGE_MAGIC, None, "rule-{}.img", kind="raw"),
    _t("IPTABLES", RAW_IMAGE_MAGIC, None, "iptables-{}.img", kind="raw"),
    _t("IP6TABLES", RAW_IMAGE_MAGIC, None, "ip6tables-{}.img", kind="raw"),
    _t("NFTABLES", RAW_IMAGE_MAGIC, None, "nftables-{}.img", kind="raw"),
    _t("TMPFS_IMG", RAW_IMAGE_MAGIC, None, "tmpfs-{}.tar.gz.img", kind="raw"),
    _t("TMPFS_DEV", RAW_IMAGE_MAGIC, None, "tmpfs-dev-{}.tar.gz.img", kind="raw"),
    _t("NETNS_CT", RAW_IMAGE_MAGIC, None, "netns-ct-{}.img", kind="raw"),
    _t("NETNS_EXP", RAW_IMAGE_MAGIC, None, "netns-exp-{}.img", kind="raw"),
)

BY_NAME: dict[str, ImageType] = {t.name: t for t in IMAGES}
BY_MAGIC: dict[int, ImageType] = {}
for _t_ in IMAGES:
    if _t_.kind != "raw":
        BY_MAGIC.setdefault(_t_.magic, _t_)
del _t_

# Longest literal prefix first, so that "pagemap-shmem-1.img" is not taken for "pagemap-{}.img" and
# "tmpfs-dev-" wins over "tmpfs-". Matched with str methods: compiling ~80 regexes cost every command 2-3 ms.
_PATTERNS: list[tuple[str, str, bool, ImageType]] = []  # (head, tail, has an id, type)
for _it in sorted((t for t in IMAGES if t.pattern), key=lambda t: -len(t.pattern.split("{}")[0])):
    _head, _sep, _tail = _it.pattern.partition("{}")
    _PATTERNS.append((_head, _tail, bool(_sep), _it))
_ID_CHARS = {"d": frozenset("0123456789"), "x": frozenset("0123456789abcdefABCDEF")}


def by_name(name: str) -> ImageType:
    """The image type called ``name`` (``"CORE"``); raises KeyError for an unknown name."""
    return BY_NAME[name]


def by_magic(value: int) -> ImageType | None:
    """The canonical image type for a magic value, or None."""
    return BY_MAGIC.get(value)


def type_for_filename(filename: str) -> tuple[ImageType, str | None] | None:
    """Match a file name (no directory) to its image type and the id in its name, or None if unknown.

    ``"core-123.img"`` gives ``(CORE, "123")``, ``"stats-dump"`` gives ``(STATS, "dump")``.
    """
    if filename.startswith("stats-"):
        return BY_NAME["STATS"], filename[len("stats-") :]
    for head, tail, has_id, it in _PATTERNS:
        if not has_id:
            if filename == head:
                return it, None
        elif len(filename) > len(head) + len(tail) and filename.startswith(head) and filename.endswith(tail):
            ident = filename[len(head) : len(filename) - len(tail)]
            if _ID_CHARS[it.id_format].issuperset(ident):
                return it, ident
    return None


def filename_for(name: str, ident: int | str | None = None) -> str:
    """The file name CRIU uses for image ``name`` and id (``filename_for("TCP_STREAM", 0x6bfd)`` gives
    ``"tcp-stream-6bfd.img"``). Raises ValueError if the image has no file name or needs/refuses an id."""
    it = BY_NAME[name]
    if it.pattern is None:
        raise ValueError(f"image {name} has no file name of its own")
    if "{}" not in it.pattern:
        if ident is not None:
            raise ValueError(f"image {name} takes no id")
        return it.pattern
    if ident is None:
        raise ValueError(f"image {name} needs an id")
    if isinstance(ident, int):
        if ident < 0:
            raise ValueError(f"negative id {ident} for image {name}")
        ident = format(ident, it.id_format)
    if "/" in ident or ident in ("", ".", ".."):
        raise ValueError(f"bad id {ident!r} for image {name}")
    return it.pattern.replace("{}", ident)
