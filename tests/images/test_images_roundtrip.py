"""Every golden CRIU 4.2 image decodes and encodes back to the same bytes: binary, plain JSON, pretty JSON."""

from __future__ import annotations

import base64
import json

import pytest

from criu_core.images import framing, jsonconv


def test_binary_roundtrip(golden_image):
    path = golden_image
    raw = path.read_bytes()
    img = framing.read_image(path)
    assert framing.encode(img.type, img.entries) == raw


@pytest.mark.parametrize("pretty", [False, True], ids=["plain", "pretty"])
def test_json_roundtrip(golden_image, pretty):
    path = golden_image
    raw = path.read_bytes()
    obj = jsonconv.decode_file(path, pretty)
    text = json.dumps(obj, indent=4 if pretty else None)
    assert jsonconv.encode_json(json.loads(text)) == raw


def test_every_fixture_has_no_unknown_fields(golden_images):
    """Our protos model every field CRIU 4.2 wrote (else JSON would silently drop data)."""
    from google.protobuf.descriptor import FieldDescriptor as FD
    from google.protobuf.unknown_fields import UnknownFieldSet

    def unknown(msg, where):
        found = [where] if len(UnknownFieldSet(msg)) else []
        for fd, value in msg.ListFields():
            if fd.type == FD.TYPE_MESSAGE:
                for sub in value if fd.label == FD.LABEL_REPEATED else [value]:
                    found += unknown(sub, f"{where}.{fd.name}")
        return found

    bad = []
    for path in golden_images:
        for ent in framing.read_image(path).entries:
            bad += [f"{path.parent.name}/{path.name}: {w}" for w in unknown(ent.msg, ent.msg.DESCRIPTOR.name)]
    assert bad == []


def test_pretty_shapes_match_crit_conventions(golden_images):
    IMAGES = golden_images
    d = jsonconv.decode_file(next(p for p in IMAGES if p.name.startswith("mm-")), pretty=True)
    mm = d["entries"][0]
    assert mm["mm_start_code"].startswith("0x")
    vma = mm["vmas"][0]
    assert vma["start"].startswith("0x") and vma["end"].startswith("0x")
    assert "PROT_READ" in vma["prot"]
    assert "VMA_AREA_REGULAR" in vma["status"]
    core = jsonconv.decode_file(next(p for p in IMAGES if p.name.startswith("core-")), pretty=True)["entries"][0]
    assert core["mtype"] == "X86_64"
    assert core["thread_info"]["gpregs"]["ip"].startswith("0x")
    assert core["thread_info"]["gpregs"]["mode"] == "NATIVE"
    assert core["tc"]["task_state"] == "Alive"
    pm = jsonconv.decode_file(next(p for p in IMAGES if p.name.startswith("pagemap-")), pretty=True)["entries"]
    assert set(pm[0]) == {"pages_id"}
    assert all("PE_PRESENT" in e["flags"] for e in pm[1:])
    assert all(e["nr_pages"] > 0 and e["compat_nr_pages"] == 0 for e in pm[1:])  # as CRIU 4.2 writes them


def test_ipc_extras_decode(golden_images):
    ipc = [p for p in golden_images if p.parent.name == "ipc"]
    if not ipc:
        pytest.skip("no ipc dump")
    pipes = jsonconv.decode_file(next(p for p in ipc if p.name == "pipes-data.img"))
    datas = [base64.b64decode(e["extra"]) for e in pipes["entries"] if "extra" in e]
    assert b"pipe-bytes-in-flight" in b"".join(datas)
    skq = framing.read_image(next(p for p in ipc if p.name == "sk-queues.img"))
    payloads = [e.extra for e in skq.entries]
    assert all(len(x) == e.msg.length for x, e in zip(payloads, skq.entries, strict=True))
    assert b"dgram-1" in payloads and b"dgram-2" in payloads
    assert any(b"unix-stream-queued" in x for x in payloads)
