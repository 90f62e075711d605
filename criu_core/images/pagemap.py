"""Pagemap helpers: the page count that moved fields in CRIU 4.2, and where an entry's pages sit in pages-N.img.

CRIU 4.2 writes the real count in ``nr_pages`` (field 5, uint64) and 0 in ``compat_nr_pages`` (field 2); older
readers (crit 3.x, CRIU < 4.2, go-criu) only know field 2. So: read field 5 when present, else field 2; write
both, field 2 capped at 2**32-1. All arithmetic stays in Python ints, so counts past 2**32 pages are exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from criu_core.images.messages import message_class

__all__ = [
    "PAGE_SIZE",
    "PE_LAZY",
    "PE_PARENT",
    "PE_PRESENT",
    "U32_MAX",
    "flags",
    "make_entry",
    "make_head",
    "nr_pages",
    "page_offsets",
    "set_nr_pages",
]

PAGE_SIZE = 4096
PE_PARENT = 1 << 0
PE_LAZY = 1 << 1
PE_PRESENT = 1 << 2
U32_MAX = 2**32 - 1


def nr_pages(entry: Any) -> int:
    """The entry's page count: ``nr_pages`` (field 5) if present, else ``compat_nr_pages`` (field 2)."""
    if entry.HasField("nr_pages"):
        return entry.nr_pages
    return entry.compat_nr_pages


def flags(entry: Any) -> int:
    """The entry's PE_* flags as CRIU reads them: absent means PE_PRESENT, ``in_parent`` adds PE_PARENT."""
    value = entry.flags if entry.HasField("flags") else PE_PRESENT
    if entry.in_parent:
        value |= PE_PARENT
    return value


def set_nr_pages(entry: Any, count: int) -> Any:
    """Store ``count`` in both fields (field 2 capped at 2**32-1); returns the entry."""
    if count < 0 or count >= 2**64:
        raise ValueError(f"page count {count} out of range")
    entry.nr_pages = count
    entry.compat_nr_pages = min(count, U32_MAX)
    return entry


def make_entry(vaddr: int, count: int, pe_flags: int = PE_PRESENT) -> Any:
    """A ``pagemap_entry`` for ``count`` pages at ``vaddr`` (page aligned) with both counts set."""
    if vaddr % PAGE_SIZE:
        raise ValueError(f"vaddr 0x{vaddr:x} is not page aligned")
    entry = message_class("pagemap.pagemap_entry")(vaddr=vaddr, flags=pe_flags)
    return set_nr_pages(entry, count)


def make_head(pages_id: int) -> Any:
    """The ``pagemap_head`` that names pages-<pages_id>.img."""
    return message_class("pagemap.pagemap_head")(pages_id=pages_id)


def page_offsets(entries: Iterable[Any]) -> Iterator[tuple[Any, int | None]]:
    """Yield ``(entry, byte offset in pages-N.img)`` for each pagemap entry (head excluded), in order.

    Only PE_PRESENT entries occupy space; the offset is None for the others (parent or lazy pages).
    """
    offset = 0
    for entry in entries:
        if flags(entry) & PE_PRESENT:
            yield entry, offset
            offset += nr_pages(entry) * PAGE_SIZE
        else:
            yield entry, None
