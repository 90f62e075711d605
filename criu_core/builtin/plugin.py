"""The built-in plugins' hookimpls, one namespace class per plugin; their mechanics live beside this module.

Registering a plugin must not import what it does: ``criu-py --help``, ``plugins`` and ``check`` build the
host too, and a dump has no use for the restore machinery (nor a restore for the dump's). So each hookimpl
imports its mechanics module when it first runs, and a ``criu_fini`` of a mechanics module that was never
imported has nothing to clean up. Every hookimpl is ``trylast``: a plugin claims a resource before us.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from criu_core.hookspecs import hookimpl
from criu_core.images.criu_core_task import COW_PAGES_INVENTORY_NAME

if TYPE_CHECKING:
    from criu_core.context import DumpContext
    from criu_core.resources import (
        FdInfo,
        FileClaim,
        FileImage,
        MappedVma,
        RestoredFd,
        SocketInfo,
        Vma,
        VmaClaim,
        VmaImage,
    )

__all__ = ["Fds", "Files", "FilesRestore", "Ghosts", "MemRestore", "Memfd", "Memory", "SkUnixRestore", "Sockets"]


def _fini(module: str, ctx: Any, stage: str, success: bool) -> None:
    loaded = sys.modules.get(f"criu_core.builtin.{module}")
    if loaded is not None:
        loaded.fini(ctx=ctx, stage=stage, success=success)


class Memory:
    """builtin.memory: ordinary mappings (anonymous, file-backed, heap, stack, vdso/vvar, vsyscall)."""

    @staticmethod
    @hookimpl
    def criu_addoption(parser: Any) -> None:
        parser.add_flag(
            "dedup-cow-pages",
            stages=("dump",),
            help="store once the pages a child still shares copy-on-write with its parent (criu-core only: "
            "CRIU 4.2 cannot restore such images)",
        )

    @staticmethod
    @hookimpl(trylast=True)
    def criu_vma_dump(ctx: DumpContext, vma: Vma) -> VmaClaim | None:
        """Claim every mapping CRIU's own code handles; the status bits say what kind it is."""
        from criu_core.dumping.mm import anon_name, classify
        from criu_core.resources import VmaClaim

        status = classify(vma)
        if status is None:
            return None
        # file mappings are named by their path, never "[anon:...]"
        return VmaClaim(plugin="builtin.memory", status=status, anon_name=anon_name(vma.name))


class Files:
    """builtin.files: files opened by path, pipes, eventfd, signalfd, timerfd, epoll (:mod:`.files`)."""

    @staticmethod
    @hookimpl(trylast=True)
    def criu_file_dump(ctx: DumpContext, fd: FdInfo) -> FileClaim | None:
        from criu_core.builtin import files

        return files.dump_file(ctx, fd)


class Sockets:
    """builtin.sockets: unix sockets and their queues (:mod:`.sockets`)."""

    @staticmethod
    @hookimpl(trylast=True)
    def criu_unix_sk_dump(ctx: DumpContext, sk: SocketInfo) -> FileClaim | None:
        from criu_core.builtin import sockets

        return sockets.dump_unix_socket(ctx, sk)


class MemRestore:
    """builtin.mem_restore: map every ordinary VMA in the seed (:mod:`.mem_restore`)."""

    # Images dumped with --dedup-cow-pages name this in inventory.plugins_entry (so that CRIU 4.2 refuses them);
    # this restore handles the pages they leave to parent tasks (criu-core-PID.img parent_pages, cow_restore).
    CRIU_INVENTORY_NAME = COW_PAGES_INVENTORY_NAME

    @staticmethod
    @hookimpl(trylast=True)
    def criu_vma_restore(ctx: Any, vma: VmaImage, remote: Any) -> MappedVma | None:
        from criu_core.builtin import mem_restore

        return mem_restore.map_vma(ctx, vma, remote)

    @staticmethod
    @hookimpl(trylast=True)
    def criu_fini(ctx: Any, stage: str, success: bool) -> None:
        _fini("mem_restore", ctx, stage, success)


class FilesRestore:
    """builtin.files_restore: files opened by path (:mod:`.files_restore`)."""

    @staticmethod
    @hookimpl(trylast=True)
    def criu_file_restore(ctx: Any, file: FileImage) -> RestoredFd | None:
        from criu_core.builtin import files_restore

        return files_restore.open_file(ctx, file)


class Fds:
    """builtin.fds_restore: pipes, eventfd, signalfd, timerfd, epoll (:mod:`.fds_restore`)."""

    @staticmethod
    @hookimpl(trylast=True)
    def criu_file_restore(ctx: Any, file: FileImage) -> RestoredFd | None:
        from criu_core.builtin import fds_restore

        return fds_restore.open_file(ctx, file)

    @staticmethod
    @hookimpl(trylast=True)
    def criu_fini(ctx: Any, stage: str, success: bool) -> None:
        _fini("fds_restore", ctx, stage, success)


class SkUnixRestore:
    """builtin.sk_unix_restore: unix sockets (:mod:`.sk_unix_restore`)."""

    @staticmethod
    @hookimpl(trylast=True)
    def criu_unix_sk_restore(ctx: Any, file: FileImage) -> RestoredFd | None:
        from criu_core.builtin import sk_unix_restore

        return sk_unix_restore.open_socket(ctx, file)

    @staticmethod
    @hookimpl(trylast=True)
    def criu_fini(ctx: Any, stage: str, success: bool) -> None:
        _fini("sk_unix_restore", ctx, stage, success)


class Memfd:
    """builtin.memfd_restore: memfd descriptors (:mod:`.memfd_restore`)."""

    @staticmethod
    @hookimpl(trylast=True)
    def criu_file_restore(ctx: Any, file: FileImage) -> RestoredFd | None:
        from criu_core.builtin import memfd_restore

        return memfd_restore.open_file(ctx, file)

    @staticmethod
    @hookimpl(trylast=True)
    def criu_fini(ctx: Any, stage: str, success: bool) -> None:
        _fini("memfd_restore", ctx, stage, success)


class Ghosts:
    """builtin.ghost_restore: remove ghost files and link remaps after a restore (:mod:`.ghost_restore`)."""

    @staticmethod
    @hookimpl(trylast=True)
    def criu_fini(ctx: Any, stage: str, success: bool) -> None:
        _fini("ghost_restore", ctx, stage, success)
