"""``[anon:NAME]`` VMA names (PR_SET_VMA_ANON_NAME): the dump side from smaps text, and the names in criu-core's
own image criu-core-PID.img (CRIU's vma_entry is not extended) through our writer, our decoder and Debian's crit,
which decodes the mm image and refuses our own file."""

from __future__ import annotations

import json
import subprocess

import pytest

from criu_core.context import DumpContext
from criu_core.dumping.mm import anon_name, to_vmas
from criu_core.images import ImageDir, jsonconv
from criu_core.images.criu_core_task import task_entry
from criu_core.images.messages import new
from criu_core.images.vma import VMA_ANON_PRIVATE, VMA_ANON_SHARED, anon_name_problem
from criu_core.options import Options
from criu_core.plugins import PluginHost
from criu_core.procfs.maps import parse_smaps


def crit_decode(crit: str, path) -> dict:
    res = subprocess.run([crit, "decode", "-i", str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# What /proc/PID/smaps shows for named anonymous memory (header lines; counters cut to a few).
SMAPS = """\
7f0000000000-7f0000008000 rw-p 00000000 00:00 0                          [anon:foo]
Size:                 32 kB
Rss:                  32 kB
VmFlags: rd wr mr mw me ac sd
7f0000008000-7f0000010000 rw-p 00000000 00:00 0                          [anon:my arena 2]
Size:                 32 kB
VmFlags: rd wr mr mw me ac sd
7f0000010000-7f0000011000 r--p 00000000 00:00 0                          [anon: lead and trail ]
Size:                  4 kB
VmFlags: rd mr mw me ac sd
7f0000011000-7f0000012000 rw-p 00000000 00:00 0 
Size:                  4 kB
VmFlags: rd wr mr mw me ac sd
7f0000012000-7f0000014000 rw-s 00000000 00:01 4242                       [anon_shmem:shared one]
Size:                  8 kB
VmFlags: rd wr sh mr mw me ms sd
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
VmFlags: rd wr mr mw me gd ac
"""


def _claims() -> list[tuple[object, object]]:
    host = PluginHost(load_entry_points=False)
    ctx = DumpContext(options=Options(), host=host, images_dir="/nonexistent", root_pid=1)
    return [(v, host.vma_dump(ctx, v)) for v in to_vmas(1, parse_smaps(SMAPS))]


def test_names_parsed_from_maps_names() -> None:
    assert anon_name("[anon:foo]") == "foo"
    assert anon_name("[anon:my arena 2]") == "my arena 2"
    assert anon_name("[anon_shmem:x y]") == "x y"
    for other in ("[heap]", "[stack]", "", "/usr/lib/libc.so.6", "[anon:unterminated"):
        assert anon_name(other) is None, other


def test_dump_claims_record_the_name() -> None:
    """The built-in memory handler gives the dump the name with its claim, and no vma_entry field for it."""
    claims = _claims()
    assert all(c.entry_updates == {} for _, c in claims)
    got = [(v.start, c.status, c.anon_name) for v, c in claims]
    assert got == [
        (0x7F0000000000, 1 | VMA_ANON_PRIVATE, "foo"),
        (0x7F0000008000, 1 | VMA_ANON_PRIVATE, "my arena 2"),
        (0x7F0000010000, 1 | VMA_ANON_PRIVATE, " lead and trail "),  # the kernel keeps the spaces
        (0x7F0000011000, 1 | VMA_ANON_PRIVATE, None),
        (0x7F0000012000, 1 | VMA_ANON_SHARED, "shared one"),  # a named shmem is still shared anonymous memory
        (0x7FFD00000000, 1 | VMA_ANON_PRIVATE, None),
    ]


def test_mm_image_round_trip_and_crit(tmp_path, crit) -> None:
    """The named entries as the dump writes them: the mm image is CRIU's (crit decodes it, byte for byte the
    same as without names), the names are in criu-core-PID.img, which our decoder reads back and Debian's crit
    refuses (unknown magic)."""
    vmas = []
    claims = _claims()
    for v, c in claims:
        entry = {
            "start": v.start,
            "end": v.end,
            "pgoff": 0,
            "shmid": 0,
            "prot": v.prot,
            "flags": v.flags,
            "status": c.status,
            "fd": -1,
        }
        entry.update(c.entry_updates)
        vmas.append(new("vma.vma_entry", **entry))
    mm = new(
        "mm.mm_entry",
        mm_start_code=0,
        mm_end_code=0,
        mm_start_data=0,
        mm_end_data=0,
        mm_start_stack=0,
        mm_start_brk=0,
        mm_brk=0,
        mm_arg_start=0,
        mm_arg_end=0,
        mm_env_start=0,
        mm_env_end=0,
        exe_file_id=1,
        vmas=vmas,
    )
    images = ImageDir(tmp_path, create=True)
    path = images.write_one("mm", mm, 42)
    own = images.write_one("criu-core", task_entry(vma_names=[(v.start, c.anon_name) for v, c in claims
                                                              if c.anon_name is not None]), 42)
    assert own == str(tmp_path / "criu-core-42.img")

    back = ImageDir(tmp_path).read_one("criu-core", 42)
    assert [(n.start, n.name) for n in back.vma_names] == [
        (0x7F0000000000, "foo"),
        (0x7F0000008000, "my arena 2"),
        (0x7F0000010000, " lead and trail "),
        (0x7F0000012000, "shared one"),
    ]
    ours = jsonconv.decode_file(own)
    assert ours["magic"] == "CRIU_CORE_TASK"
    assert [n["name"] for n in ours["entries"][0]["vma_names"]] == ["foo", "my arena 2", " lead and trail ",
                                                                     "shared one"]

    # CRIU's file: crit decodes every VMA, and it has nothing but CRIU's fields
    theirs = crit_decode(crit, path)
    tv = theirs["entries"][0]["vmas"]
    assert [(int(v["start"]), int(v["end"]), v["status"]) for v in tv] == [(v.start, v.end, c.status) for v, c in claims]
    assert all(set(v) <= {"start", "end", "pgoff", "shmid", "prot", "flags", "status", "fd"} for v in tv), tv
    # our own file: crit refuses it by its magic, it does not misread it
    res = subprocess.run([crit, "decode", "-i", own], check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "0x4f435243" in (res.stdout + res.stderr).lower(), (res.stdout, res.stderr)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("foo", True),
        ("my arena 2", True),
        ("x" * 79, True),
        ("x" * 80, False),
        ("a[b", False),
        ("a$b", False),
        ("tab\there", False),
        ("é", False),
    ],
)
def test_name_validity_matches_the_kernel_rules(name: str, ok: bool) -> None:
    assert (anon_name_problem(name) is None) == ok
