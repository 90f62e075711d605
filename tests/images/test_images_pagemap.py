"""Pagemap page counts: field 5 (CRIU 4.2) wins, field 2 is the fallback, both are written, no 32-bit overflow."""

from __future__ import annotations

import pytest

from criu_core.images import framing, pagemap
from criu_core.images.messages import message_class

Entry = message_class("pagemap.pagemap_entry")


def test_huge_count_roundtrip(tmp_path):
    n = 2**32 + 5
    e = pagemap.make_entry(0x7F0000000000, n, pagemap.PE_PRESENT | pagemap.PE_LAZY)
    assert e.compat_nr_pages == 2**32 - 1 and e.nr_pages == n
    path = tmp_path / "pagemap-1.img"
    framing.write_image(path, "PAGEMAP", [pagemap.make_head(1), e])
    img = framing.read_image(path)
    head, back = img.entries[0].msg, img.entries[1].msg
    assert head.pages_id == 1
    assert pagemap.nr_pages(back) == n
    assert pagemap.nr_pages(back) * pagemap.PAGE_SIZE == 17_592_186_064_896
    nxt = pagemap.make_entry(0x7F0000000000 + n * 4096, 1)
    offsets = [off for _, off in pagemap.page_offsets([back, nxt])]
    assert offsets == [0, 17_592_186_064_896]


def test_only_compat_field():
    e = Entry(vaddr=0x1000, compat_nr_pages=7, flags=pagemap.PE_PRESENT)
    back = Entry.FromString(e.SerializeToString())
    assert not back.HasField("nr_pages")
    assert pagemap.nr_pages(back) == 7


def test_field5_wins_even_when_compat_is_zero():
    e = Entry(vaddr=0x1000, compat_nr_pages=0, nr_pages=3)
    assert pagemap.nr_pages(e) == 3


def test_both_fields_on_the_wire():
    raw = pagemap.make_entry(0x2000, 300).SerializeToString()
    # field 2 (tag 0x10) and field 5 (tag 0x28) are both there, so old and new readers agree
    assert b"\x10\xac\x02" in raw and b"\x28\xac\x02" in raw


def test_flags_defaults_and_offsets():
    absent = Entry(vaddr=0, compat_nr_pages=2)
    assert pagemap.flags(absent) == pagemap.PE_PRESENT
    legacy = Entry(vaddr=0, compat_nr_pages=2, in_parent=True, flags=0)
    assert pagemap.flags(legacy) == pagemap.PE_PARENT
    lazy = Entry(vaddr=0x5000, compat_nr_pages=1, flags=pagemap.PE_LAZY)
    ents = [pagemap.make_entry(0x1000, 2), lazy, pagemap.make_entry(0x9000, 1)]
    assert [off for _, off in pagemap.page_offsets(ents)] == [0, None, 8192]


def test_bad_counts_and_addresses():
    with pytest.raises(ValueError):
        pagemap.make_entry(0x1001, 1)
    with pytest.raises(ValueError):
        pagemap.make_entry(0x1000, -1)
    with pytest.raises(ValueError):
        pagemap.make_entry(0x1000, 2**64)
