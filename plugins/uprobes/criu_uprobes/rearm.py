"""Restore: make the kernel own the breakpoints of the restored code again.

The kernel treats an int3 as a uprobe's only in an mm flagged MMF_HAS_UPROBES (``uprobe_pre_sstep_notifier``);
otherwise the task gets SIGTRAP, probe or no probe. The flag is set when the kernel installs a breakpoint:
``uprobe_mmap()`` does it when a file is mapped, but only into a mapping without VM_WRITE (``valid_vma``). The
restore maps a code VMA writable when it has pages to write (they are written with process_vm_writev, then the
mapping is made read-only), so the kernel installs nothing there and never sets the flag: the restored task
dies of SIGTRAP at the first hit of a probe that is still active (seen with criu-core's restore; CRIU's restorer
maps such VMAs so that it works).

So after the pages of an executable private file VMA are written, the task maps the same file range again,
read-only, at a free address, and unmaps it: ``uprobe_mmap()`` installs the active probes into that copy and sets
the flag. From then on the kernel finds the uprobe behind a breakpoint of the real VMA (it looks probes up by
file and offset), runs it out of line (a new ``[uprobes]`` page) or emulates it, and may optimise it again.
Without an active probe in the range the extra mapping changes nothing. A no-op once the core maps code VMAs
with their own protections first (README.md, "Core changes").
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from criu_uprobes.textscan import parse_maps

if TYPE_CHECKING:
    from criu_core.resources import VmaImage

__all__ = ["VMA_FILE_PRIVATE", "rearm_vma"]

PROT_READ, PROT_EXEC = 0x1, 0x4  # sys/mman.h
MAP_PRIVATE = 0x02
AT_FDCWD = -100
VMA_FILE_PRIVATE = 1 << 6  # CRIU image.h


def rearm_vma(vma: VmaImage, remote: Any, proc: str = "/proc") -> bool:
    """Map the file range of an executable private file VMA once more in the task and unmap it.

    ``remote`` is the restore's handle on the stopped task (``syscall``, ``scratch``, ``write_mem``). Returns
    whether it did anything (False for other VMAs, or when the task's mapping has no file path to open).
    """
    e = vma.entry
    if not (e.prot & PROT_EXEC and e.status & VMA_FILE_PRIVATE):
        return False
    path = next((m.name for m in parse_maps(vma.pid, proc) if m.start == e.start and m.is_file), None)
    if path is None or path.endswith(" (deleted)"):
        return False
    raw = os.fsencode(path) + b"\0"
    with remote.scratch(len(raw)) as addr:
        remote.write_mem(addr, raw)
        fd = remote.syscall("openat", AT_FDCWD, addr, os.O_RDONLY | os.O_CLOEXEC, 0)
    try:
        length = e.end - e.start
        copy = remote.syscall("mmap", 0, length, PROT_READ, MAP_PRIVATE, fd, e.pgoff)
        remote.syscall("munmap", copy, length)
    finally:
        remote.syscall("close", fd, check=False)
    return True
