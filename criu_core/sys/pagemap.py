"""PAGEMAP_SCAN (Linux 6.7+): find present/swapped/zero-page runs of a task without reading every pagemap entry.

``ioctl(fd of /proc/PID/pagemap, PAGEMAP_SCAN, &pm_scan_arg)`` fills an array of ``page_region`` (start, end,
categories), merging neighbouring pages with equal categories, and skips unpopulated page tables wholesale, so
a multi-TiB MAP_NORESERVE area costs what its populated part costs. Also :func:`read_pagemap` for the classic
u64-per-page interface (present bit 63, swapped 62, file/shared 61, exclusive 56, PFN bits 0-54).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct

from criu_core.errors import SyscallError
from criu_core.sys.libc import libc

__all__ = [
    "PAGEMAP_SCAN",
    "PAGE_IS_FILE",
    "PAGE_IS_HUGE",
    "PAGE_IS_PFNZERO",
    "PAGE_IS_PRESENT",
    "PAGE_IS_SOFT_DIRTY",
    "PAGE_IS_SWAPPED",
    "PAGE_IS_WPALLOWED",
    "PAGE_IS_WRITTEN",
    "PM_EXCLUSIVE",
    "PM_FILE",
    "PM_PFN_MASK",
    "PM_PRESENT",
    "PM_SWAP",
    "PageRegion",
    "PmScanArg",
    "pagemap_scan",
    "read_pagemap",
]

# linux/fs.h
PAGE_IS_WPALLOWED = 1 << 0
PAGE_IS_WRITTEN = 1 << 1
PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_PFNZERO = 1 << 5
PAGE_IS_HUGE = 1 << 6
PAGE_IS_SOFT_DIRTY = 1 << 7

PM_PRESENT = 1 << 63
PM_SWAP = 1 << 62
PM_FILE = 1 << 61
PM_EXCLUSIVE = 1 << 56
PM_PFN_MASK = (1 << 55) - 1


class PageRegion(ctypes.Structure):
    """``linux/fs.h``: ``struct page_region { __u64 start; __u64 end; __u64 categories; };``"""

    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("categories", ctypes.c_uint64)]


class PmScanArg(ctypes.Structure):
    """``linux/fs.h`` (96 bytes)::

    struct pm_scan_arg {
        __u64 size, flags, start, end, walk_end, vec, vec_len, max_pages,
              category_inverted, category_mask, category_anyof_mask, return_mask;
    };
    """

    _fields_ = [
        (n, ctypes.c_uint64)
        for n in [
            "size",
            "flags",
            "start",
            "end",
            "walk_end",
            "vec",
            "vec_len",
            "max_pages",
            "category_inverted",
            "category_mask",
            "category_anyof_mask",
            "return_mask",
        ]
    ]


# _IOWR('f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(PmScanArg) << 16) | (ord("f") << 8) | 16

libc.ioctl.restype = ctypes.c_int


def pagemap_scan(
    fd: int,
    start: int,
    end: int,
    *,
    anyof: int = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    return_mask: int = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE | PAGE_IS_PFNZERO,
    vec_len: int = 512,
    pid: int | None = None,
) -> list[tuple[int, int, int]]:
    """Every run of pages in [start, end) having any of ``anyof``: [(start, end, categories & return_mask)].

    ``fd`` is an open ``/proc/PID/pagemap``. Raises SyscallError (ENOTTY/EINVAL on kernels without the ioctl).
    """
    out: list[tuple[int, int, int]] = []
    vec = (PageRegion * vec_len)()
    arg = PmScanArg()
    arg.size = ctypes.sizeof(PmScanArg)
    arg.vec = ctypes.addressof(vec)
    arg.vec_len = vec_len
    arg.category_anyof_mask = anyof
    arg.return_mask = return_mask
    pos = start
    while pos < end:
        arg.start = pos
        arg.end = end
        arg.walk_end = 0
        n = libc.ioctl(fd, ctypes.c_ulong(PAGEMAP_SCAN), ctypes.byref(arg))
        if n < 0:
            raise SyscallError(ctypes.get_errno(), "ioctl(PAGEMAP_SCAN)", pid)
        for i in range(n):
            r = vec[i]
            if out and out[-1][1] == r.start and out[-1][2] == r.categories:
                out[-1] = (out[-1][0], r.end, r.categories)
            else:
                out.append((r.start, r.end, r.categories))
        if arg.walk_end <= pos:
            break
        pos = arg.walk_end
    return out


def read_pagemap(fd: int, start: int, npages: int, page_size: int = 4096) -> tuple[int, ...]:
    """The raw u64 pagemap entries of ``npages`` pages from ``start`` (classic interface)."""
    data = os.pread(fd, npages * 8, (start // page_size) * 8)
    if len(data) != npages * 8:
        raise SyscallError(_errno.EIO, "pread(/proc/PID/pagemap)")
    return struct.unpack(f"<{npages}Q", data)
