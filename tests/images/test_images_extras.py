"""Raw payloads after entries (§1.3): built, decoded, JSON round-tripped and checked against their lengths."""

from __future__ import annotations

import json
import struct

import pytest

from criu_core.images import framing, jsonconv
from criu_core.images.messages import new


def _json_roundtrip(data: bytes) -> None:
    for pretty in (False, True):
        obj = json.loads(json.dumps(jsonconv.decode_bytes(data, "x", pretty)))
        assert jsonconv.encode_json(obj) == data


def test_pipes_and_fifo_data():
    for name in ("PIPES_DATA", "FIFO_DATA"):
        ents = [
            (new("pipe_data.pipe_data_entry", pipe_id=7, bytes=5, size=65536), b"hello"),
            (new("pipe_data.pipe_data_entry", pipe_id=8, bytes=0, size=4096), b""),  # empty pipes are listed too
        ]
        data = framing.encode(name, ents)
        img = framing.decode(data)
        assert img.type.name == name
        assert [e.extra for e in img.entries] == [b"hello", b""]
        _json_roundtrip(data)
    with pytest.raises(ValueError):
        framing.encode("PIPES_DATA", [(new("pipe_data.pipe_data_entry", pipe_id=1, bytes=3), b"toolong")])


def test_sk_queues_with_scm():
    e = new("sk_packet.sk_packet_entry", id_for=9, length=4)
    e.scm.add(type=1, rights=[3, 4])
    data = framing.encode("SK_QUEUES", [(e, b"data")])
    img = framing.decode(data)
    assert img.entries[0].extra == b"data" and list(img.entries[0].msg.scm[0].rights) == [3, 4]
    _json_roundtrip(data)


def test_tcp_stream_inq_outq():
    e = new(
        "tcp_stream.tcp_stream_entry",
        inq_len=3,
        inq_seq=1,
        outq_len=2,
        outq_seq=2,
        opt_mask=7,
        snd_wscale=10,
        mss_clamp=65495,
    )
    data = framing.encode("TCP_STREAM", [(e, {"inq": b"abc", "outq": b"de"})])
    assert data.endswith(b"abcde")
    img = framing.decode(data)
    assert img.entries[0].extra == {"inq": b"abc", "outq": b"de"}
    d = jsonconv.decode_bytes(data, "x")
    assert set(d["entries"][0]["extra"]) == {"inq", "outq"}
    _json_roundtrip(data)


def test_ghost_file_whole_and_chunked():
    gf = new("ghost_file.ghost_file_entry", uid=0, gid=0, mode=0o100644, size=6)
    data = framing.encode("GHOST_FILE", [(gf, b"123456")])
    img = framing.decode(data)
    assert img.entries[0].extra == b"123456"
    _json_roundtrip(data)

    gf = new("ghost_file.ghost_file_entry", uid=0, gid=0, mode=0o100644, chunks=True, size=8192)
    c1 = new("ghost_file.ghost_chunk_entry", len=3, off=0)
    c2 = new("ghost_file.ghost_chunk_entry", len=2, off=4096)
    data = framing.encode("GHOST_FILE", [gf, (c1, b"abc"), (c2, b"xy")])
    img = framing.decode(data)
    assert [e.extra for e in img.entries] == [None, b"abc", b"xy"]
    assert img.entries[1].msg.DESCRIPTOR.name == "ghost_chunk_entry"
    _json_roundtrip(data)
    with pytest.raises(framing.ImageFormatError):
        framing.decode(data[:-1])


def _desc():
    return new("ipc_desc.ipc_desc_entry", key=1, uid=0, gid=0, cuid=0, cgid=0, mode=0o600, id=5)


def test_ipc_shm_padding_and_pagemaps():
    e = new("ipc_shm.ipc_shm_entry", desc=_desc(), size=5)
    data = framing.encode("IPCNS_SHM", [(e, b"12345")])
    assert data.endswith(b"12345\0\0\0")  # rounded up to 4 bytes
    assert framing.decode(data).entries[0].extra == b"12345"
    _json_roundtrip(data)
    e2 = new("ipc_shm.ipc_shm_entry", desc=_desc(), size=4096, in_pagemaps=True)
    data = framing.encode("IPCNS_SHM", [e2])  # contents live in pagemap-shmem + pages instead
    assert framing.decode(data).entries[0].extra is None
    _json_roundtrip(data)


def test_ipc_sem_values():
    e = new("ipc_sem.ipc_sem_entry", desc=_desc(), nsems=3)
    vals = struct.pack("<3H", 1, 2, 65535)
    data = framing.encode("IPCNS_SEM", [(e, vals)])
    assert data.endswith(vals + b"\0\0")  # 6 bytes padded to 8
    assert jsonconv.decode_bytes(data, "x")["entries"][0]["extra"] == [1, 2, 65535]
    _json_roundtrip(data)


def test_ipc_msg_queue():
    e = new("ipc_msg.ipc_msg_entry", desc=_desc(), qbytes=16384, qnum=2)
    m1 = new("ipc_msg.ipc_msg", mtype=1, msize=3)
    m2 = new("ipc_msg.ipc_msg", mtype=2, msize=9)
    data = framing.encode("IPCNS_MSG", [(e, [(m1, b"abc"), (m2, b"123456789")])])
    img = framing.decode(data)
    assert [(m.mtype, d) for m, d in img.entries[0].extra] == [(1, b"abc"), (2, b"123456789")]
    _json_roundtrip(data)


def test_bpfmap_data():
    e = new("bpfmap_data.bpfmap_data_entry", map_id=1, keys_bytes=4, values_bytes=8, count=1)
    data = framing.encode("BPFMAP_DATA", [(e, b"k" * 4 + b"v" * 8)])
    assert framing.decode(data).entries[0].extra == b"kkkkvvvvvvvv"
    _json_roundtrip(data)


def test_pretty_sockets_and_devices():
    fown = new("fown.fown_entry", uid=0, euid=0, signum=0, pid_type=0, pid=0)
    opts = new(
        "sk_opts.sk_opts_entry",
        so_sndbuf=1,
        so_rcvbuf=1,
        so_snd_tmo_sec=0,
        so_snd_tmo_usec=0,
        so_rcv_tmo_sec=0,
        so_rcv_tmo_usec=0,
    )
    isk = new(
        "sk_inet.inet_sk_entry",
        id=11,
        ino=5,
        family=10,
        type=1,
        proto=6,
        state=10,
        src_port=80,
        dst_port=0,
        flags=2,
        backlog=5,
        fown=fown,
        opts=opts,
    )
    isk.src_addr.extend([0, 0, 0, 0x01000000])  # ::1 in network byte order
    isk.dst_addr.extend([0, 0, 0, 0])
    isk.tcp_opts.nodelay = True
    usk = new(
        "sk_unix.unix_sk_entry",
        id=12,
        ino=6,
        type=2,
        state=7,
        flags=2,
        uflags=0,
        backlog=0,
        peer=0,
        fown=fown,
        opts=opts,
        name=b"/tmp/x.sock\0",
    )
    fe = [
        new("fdinfo.file_entry", type=4, id=11, isk=isk),
        new("fdinfo.file_entry", type=5, id=12, usk=usk),
    ]
    data = framing.encode("FILES", fe)
    pretty = jsonconv.decode_bytes(data, "files.img", pretty=True)["entries"]
    assert pretty[0]["isk"]["family"] == "INET6" and pretty[0]["isk"]["state"] == "LISTEN"
    assert pretty[0]["isk"]["src_addr"] == ["::1"]
    assert pretty[1]["usk"]["name"] == "/tmp/x.sock=00"
    _json_roundtrip(data)
