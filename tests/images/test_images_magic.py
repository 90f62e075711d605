"""The magic table and the RPC message numbers match reference/criu-images-and-rpc.md (§1.6, §5.3)."""

from __future__ import annotations

import pytest

from criu_core.images import magic
from criu_core.images.messages import message_class

# name -> value, from the reference's table (§1.1, §1.6)
REFERENCE = {
    "INVENTORY": 0x58313116,
    "PSTREE": 0x50273030,
    "CORE": 0x55053847,
    "IDS": 0x54432030,
    "MM": 0x57492820,
    "VMAS": 0x54123737,
    "PAGEMAP": 0x56084025,
    "SHMEM_PAGEMAP": 0x56084025,
    "PAGES_OLD": 0x56084025,
    "SHM_PAGES_OLD": 0x56084025,
    "PAGES": 0,
    "FS": 0x51403912,
    "FDINFO": 0x56213732,
    "FILES": 0x56303138,
    "REG_FILES": 0x50363636,
    "EXT_FILES": 0x59255641,
    "NS_FILES": 0x61394011,
    "PIPES": 0x56513555,
    "PIPES_DATA": 0x56453709,
    "FIFO": 0x58364939,
    "FIFO_DATA": 0x59333054,
    "UNIXSK": 0x54373943,
    "INETSK": 0x56443851,
    "PACKETSK": 0x60454618,
    "NETLINK_SK": 0x58005614,
    "SK_QUEUES": 0x56264026,
    "TCP_STREAM": 0x51465506,
    "EVENTFD_FILE": 0x44523722,
    "EVENTPOLL_FILE": 0x45023858,
    "EVENTPOLL_TFD": 0x44433746,
    "SIGNALFD": 0x57323820,
    "TIMERFD": 0x50493712,
    "INOTIFY_FILE": 0x48424431,
    "INOTIFY_WD": 0x54562009,
    "FANOTIFY_FILE": 0x55096122,
    "FANOTIFY_MARK": 0x56506035,
    "MEMFD_INODE": 0x48453499,
    "TTY_FILES": 0x59433025,
    "TTY_INFO": 0x59453036,
    "TTY_DATA": 0x59413026,
    "TUNFILE": 0x57143751,
    "REMAP_FPATH": 0x59133954,
    "GHOST_FILE": 0x52583605,
    "FILE_LOCKS": 0x54323616,
    "SIGACT": 0x55344201,
    "CREDS": 0x54023547,
    "RLIMIT": 0x57113925,
    "ITIMERS": 0x57464056,
    "POSIX_TIMERS": 0x52603957,
    "SIGNAL": 0x59255647,
    "PSIGNAL": 0x59255647,
    "SECCOMP": 0x64413049,
    "TIMENS": 0x43114433,
    "CGROUP": 0x59383330,
    "MNTS": 0x55563928,
    "UTSNS": 0x54473203,
    "IPC_VAR": 0x53115007,
    "IPCNS_SHM": 0x46283044,
    "IPCNS_MSG": 0x55453737,
    "IPCNS_SEM": 0x59573019,
    "USERNS": 0x55474906,
    "PIDNS": 0x61157326,
    "NETNS": 0x55933752,
    "NETDEV": 0x57373951,
    "AUTOFS": 0x49353943,
    "BINFMT_MISC": 0x67343323,
    "BINFMT_MISC_OLD": 0x67343323,
    "CPUINFO": 0x61404013,
    "BPFMAP_FILE": 0x57506142,
    "BPFMAP_DATA": 0x64324033,
    "APPARMOR": 0x59423047,
    "PIDFD": 0x54435556,
    "STATS": 0x57093306,
    "IRMAP_CACHE": 0x57004059,
}


def test_values_match_reference():
    assert {n: magic.BY_NAME[n].magic for n in REFERENCE} == REFERENCE
    assert magic.IMG_COMMON_MAGIC == 0x54564319 and magic.IMG_SERVICE_MAGIC == 0x55105940
    assert magic.BY_MAGIC[0x56084025].name == "PAGEMAP" and magic.BY_MAGIC[0x59255647].name == "SIGNAL"


def test_heads():
    assert magic.BY_NAME["SECCOMP"].head == bytes.fromhex("1943565449304164")
    assert magic.BY_NAME["STATS"].head[:4] == bytes.fromhex("40591055")
    assert magic.BY_NAME["INVENTORY"].head == bytes.fromhex("16313158")
    assert magic.BY_NAME["PAGES"].head == b""


@pytest.mark.parametrize(
    ("fname", "name", "ident"),
    [
        ("core-123.img", "CORE", "123"),
        ("pages-1.img", "PAGES", "1"),
        ("pagemap-shmem-35.img", "SHMEM_PAGEMAP", "35"),
        ("pagemap-31001.img", "PAGEMAP", "31001"),
        ("tcp-stream-6bfd.img", "TCP_STREAM", "6bfd"),
        ("ghost-file-1a.img", "GHOST_FILE", "1a"),
        ("stats-dump", "STATS", "dump"),
        ("files.img", "FILES", None),
        ("ipcns-sem-3.img", "IPCNS_SEM", "3"),
        ("tmpfs-dev-12.tar.gz.img", "TMPFS_DEV", "12"),
    ],
)
def test_file_names(fname, name, ident):
    it, got = magic.type_for_filename(fname)
    assert (it.name, got) == (name, ident)
    assert magic.filename_for(name, ident) == fname


def test_every_message_exists():
    for it in magic.IMAGES:
        if it.message:
            assert message_class(it.message).DESCRIPTOR.name == it.message.split(".")[1]


def test_rpc_numbers():
    opts = message_class("rpc.criu_opts").DESCRIPTOR
    numbers = {f.number for f in opts.fields}
    assert numbers == set(range(1, 72)) - {40}
    assert opts.fields_by_name["images_dir_fd"].default_value == -1
    assert opts.fields_by_name["config_file"].number == 51
    assert opts.fields_by_name["log_to_stderr"].number == 71
    req = message_class("rpc.criu_req").DESCRIPTOR
    assert {f.name: f.number for f in req.fields} == {
        "type": 1,
        "opts": 2,
        "notify_success": 3,
        "keep_open": 4,
        "features": 5,
        "pid": 6,
    }
    resp = message_class("rpc.criu_resp").DESCRIPTOR
    assert [f.number for f in resp.fields] == list(range(1, 12))
    rt = req.fields_by_name["type"].enum_type
    assert rt.values_by_name["SINGLE_PRE_DUMP"].number == 13 and rt.values_by_name["VERSION"].number == 10
    nl = opts.fields_by_name["network_lock"].enum_type
    assert [(v.name, v.number) for v in nl.values] == [("IPTABLES", 1), ("NFTABLES", 2), ("SKIP", 3)]


def test_42_fields_present():
    inv = message_class("inventory.inventory_entry").DESCRIPTOR.fields_by_name
    assert (inv["plugins_entry"].number, inv["dump_criu_run_id"].number, inv["allow_uprobes"].number) == (12, 13, 14)
    pe = message_class("pagemap.pagemap_entry").DESCRIPTOR.fields_by_name
    assert pe["compat_nr_pages"].number == 2 and pe["nr_pages"].number == 5
    assert pe["nr_pages"].type == pe["nr_pages"].TYPE_UINT64
    creds = message_class("creds.creds_entry").DESCRIPTOR.fields_by_name
    assert creds["cap_amb"].number == 19
    xs = message_class("core_x86.user_x86_xsave_entry").DESCRIPTOR.fields_by_name
    assert xs["cet"].number == 9


def test_own_image_is_apart_from_criu():
    """criu-core's own per-task image: a magic that is none of CRIU's (so CRIU and crit refuse the file instead
    of misreading it), a file name no CRIU image has, and the same common head as CRIU's images."""
    own = magic.BY_NAME["CRIU_CORE_TASK"]
    criu = [t for t in magic.IMAGES if t.name != "CRIU_CORE_TASK"]
    assert own.magic == magic.CRIU_CORE_TASK_MAGIC == 0x4F435243
    assert own.magic not in {t.magic for t in criu} | set(REFERENCE.values())
    assert own.magic not in (magic.IMG_COMMON_MAGIC, magic.IMG_SERVICE_MAGIC, magic.KDAT_MAGIC, magic.RAW_IMAGE_MAGIC)
    assert own.head == bytes.fromhex("19435654") + b"CRCO"
    assert magic.by_magic(own.magic) is own and own.kind == "common"
    assert magic.type_for_filename("criu-core-31011.img") == (own, "31011")
    assert magic.type_for_filename("core-31011.img")[0].name == "CORE"
    assert magic.filename_for("CRIU_CORE_TASK", 7) == "criu-core-7.img"
    assert all(t.pattern is None or not t.pattern.startswith("criu-core") for t in criu)
