"""VMAs: smaps entries → :class:`criu_core.resources.Vma` descriptors → ``vma_entry`` fields.

Status bits, flags and madvise bits follow what CRIU 4.2 writes (images reference §3.4 and the golden dumps):
``[vvar]`` and ``[vvar_vclock]`` are written as one VVAR entry, the stack is an ordinary anonymous mapping with
MAP_GROWSDOWN, ``pgoff`` is in bytes, ``fd`` is always -1 and ``fdflags`` is set for file mappings only.
"""

from __future__ import annotations

from criu_core.images.vma import (
    VMA_ANON_PRIVATE,
    VMA_ANON_SHARED,
    VMA_AREA_HEAP,
    VMA_AREA_MEMFD,
    VMA_AREA_REGULAR,
    VMA_AREA_VDSO,
    VMA_AREA_VSYSCALL,
    VMA_AREA_VVAR,
    VMA_FILE_PRIVATE,
    VMA_FILE_SHARED,
)
from criu_core.procfs.maps import MapEntry
from criu_core.resources import Vma

__all__ = [
    "MAP_ANONYMOUS",
    "MAP_GROWSDOWN",
    "MAP_LOCKED",
    "MAP_NORESERVE",
    "MAP_PRIVATE",
    "MAP_SHARED",
    "PROT_EXEC",
    "PROT_READ",
    "PROT_WRITE",
    "PSEUDO_NO_PAGES",
    "VMFLAG_MADV",
    "anon_name",
    "classify",
    "madv_bits",
    "to_vmas",
]

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_GROWSDOWN, MAP_LOCKED, MAP_NORESERVE = 0x0100, 0x2000, 0x4000

# smaps VmFlags that are restored with madvise (P10), as the MADV_* number whose bit goes into vma_entry.madv.
VMFLAG_MADV = {"dd": 16, "dc": 10, "hg": 14, "nh": 15, "wf": 18, "mg": 12}

# Mappings whose content is never dumped (kernel-provided).
PSEUDO_NO_PAGES = ("[vvar]", "[vvar_vclock]", "[vsyscall]")


def anon_name(name: str) -> str | None:
    """The name given with prctl(PR_SET_VMA_ANON_NAME) to an anonymous mapping: maps shows it as ``[anon:NAME]``
    (private) or ``[anon_shmem:NAME]`` (shared, Linux 6.2+). NAME may hold spaces but no brackets (the
    kernel refuses them), so the final ``]`` closes it."""
    for prefix in ("[anon:", "[anon_shmem:"):
        if name.startswith(prefix) and name.endswith("]"):
            return name[len(prefix) : -1]
    return None


def madv_bits(vmflags: frozenset[str] | tuple[str, ...]) -> int:
    bits = 0
    for flag, advice in VMFLAG_MADV.items():
        if flag in vmflags:
            bits |= 1 << advice
    return bits


def to_vmas(pid: int, entries: list[MapEntry]) -> list[Vma]:
    """smaps entries → Vma descriptors (``[vvar_vclock]`` folded into the ``[vvar]`` before it, as CRIU does)."""
    out: list[Vma] = []
    for m in entries:
        prot = (PROT_READ if m.perms[0] == "r" else 0) | (PROT_WRITE if m.perms[1] == "w" else 0)
        prot |= PROT_EXEC if m.perms[2] == "x" else 0
        flags = MAP_SHARED if m.shared else MAP_PRIVATE
        if m.inode == 0:
            flags |= MAP_ANONYMOUS
        if "gd" in m.vmflags:
            flags |= MAP_GROWSDOWN
        if "nr" in m.vmflags:
            flags |= MAP_NORESERVE
        if "lo" in m.vmflags:  # VM_LOCKED (mlock): CRIU records it as MAP_LOCKED and mlocks on restore
            flags |= MAP_LOCKED
        name = m.name + (" (deleted)" if m.deleted else "")
        # deleted files keep their old path (they are dumped as ghosts); memfd, SysV shm and shared anonymous
        # memory (/memfd:x, /SYSV..., /dev/zero) are never plain files
        special = m.name.startswith(("/memfd:", "/SYSV", "/dev/zero")) or m.name == "/"
        path = m.name if m.inode and m.name.startswith("/") and not special else None
        vma = Vma(
            pid=pid,
            start=m.start,
            end=m.end,
            prot=prot,
            flags=flags,
            pgoff=m.offset,
            name=name,
            dev=m.dev,
            inode=m.inode,
            vmflags=frozenset(m.vmflags),
            path=path,
        )
        if m.name == "[vvar_vclock]" and out and out[-1].name == "[vvar]" and out[-1].end == m.start:
            prev = out.pop()
            vma = Vma(
                pid=pid,
                start=prev.start,
                end=m.end,
                prot=prev.prot,
                flags=prev.flags,
                name="[vvar]",
                vmflags=prev.vmflags | frozenset(m.vmflags),
            )
        out.append(vma)
    return out


def classify(vma: Vma) -> int | None:
    """CRIU's status bits for an ordinary mapping, or None if it is not one the built-in handler knows
    (shared anonymous memory, SysV shm, memfd, deleted files, ``[uprobes]``...)."""
    name = vma.name
    if name == "[vsyscall]":
        return VMA_AREA_VSYSCALL | VMA_ANON_PRIVATE
    if name == "[vdso]":
        return VMA_AREA_REGULAR | VMA_AREA_VDSO | VMA_ANON_PRIVATE
    if name in ("[vvar]", "[vvar_vclock]"):
        return VMA_AREA_REGULAR | VMA_AREA_VVAR | VMA_ANON_PRIVATE
    if name == "[heap]":
        return VMA_AREA_REGULAR | VMA_AREA_HEAP | VMA_ANON_PRIVATE
    if vma.inode == 0:
        if vma.flags & MAP_SHARED:
            return None
        if name.startswith("[") and name not in ("[stack]",) and not name.startswith("[anon:"):
            return None  # [uprobes] and other special mappings
        return VMA_AREA_REGULAR | VMA_ANON_PRIVATE
    if name.startswith("/memfd:"):
        kind = VMA_FILE_SHARED if vma.flags & MAP_SHARED else VMA_FILE_PRIVATE
        return VMA_AREA_REGULAR | VMA_AREA_MEMFD | kind
    if name.startswith(("/dev/zero", "[anon_shmem:")) and vma.flags & MAP_SHARED:
        return VMA_AREA_REGULAR | VMA_ANON_SHARED  # shared anonymous memory (a shmem object)
    if vma.path is None:
        return None  # SysV shm and other special files: not ordinary
    return VMA_AREA_REGULAR | (VMA_FILE_SHARED if vma.flags & MAP_SHARED else VMA_FILE_PRIVATE)
