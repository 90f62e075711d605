"""``[anon:NAME]`` VMA names (PR_SET_VMA_ANON_NAME): the dump side from smaps text, and the image field
(vma_entry.anon_name = 1000, a criu-core extension) through our writer, our decoder and Debian's crit."""

from __future__ import annotations

import json
import subprocess

import pytest

from criu_core.context import DumpContext
from criu_core.dumping.mm import anon_name, to_vmas
from criu_core.images import ImageDir, jsonconv
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
    """The built-in memory handler puts the name into the vma_entry fields it asks the dump to set."""
    got = [(v.start, c.status, c.entry_updates.get("anon_name")) for v, c in _claims()]
    assert got == [
        (0x7F0000000000, 1 | VMA_ANON_PRIVATE, "foo"),
        (0x7F0000008000, 1 | VMA_ANON_PRIVATE, "my arena 2"),
        (0x7F0000010000, 1 | VMA_ANON_PRIVATE, " lead and trail "),  # the kernel keeps the spaces
        (0x7F0000011000, 1 | VMA_ANON_PRIVATE, None),
        (0x7F0000012000, 1 | VMA_ANON_SHARED, "shared one"),  # a named shmem is still shared anonymous memory
        (0x7FFD00000000, 1 | VMA_ANON_PRIVATE, None),
    ]


def test_mm_image_round_trip_and_crit(tmp_path, crit) -> None:
    """The named entries as the dump writes them: our decoder gives the names back, Debian's crit (which does
    not know field 1000) still decodes every VMA with the fields it knows."""
    vmas = []
    for v, c in _claims():
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

    back = ImageDir(tmp_path).read_one("mm", 42)
    assert [v.anon_name if v.HasField("anon_name") else None for v in back.vmas] == [
        "foo",
        "my arena 2",
        " lead and trail ",
        None,
        "shared one",
        None,
    ]
    ours = jsonconv.decode_file(path)
    assert [v.get("anon_name") for v in ours["entries"][0]["vmas"]][:3] == ["foo", "my arena 2", " lead and trail "]

    theirs = crit_decode(crit, path)
    tv = theirs["entries"][0]["vmas"]
    assert [(int(v["start"]), int(v["end"]), v["status"]) for v in tv] == [
        (v.start, v.end, v.status) for v in back.vmas
    ]
    assert all("anon_name" not in v for v in tv)  # crit 3.17 skips the unknown field, and nothing else


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
