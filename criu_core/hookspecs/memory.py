"""Memory hooks: claim a VMA at dump, map it at restore, provide its page content."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.hookspecs import hookspec

if TYPE_CHECKING:
    from criu_core.context import DumpContext, RestoreContext
    from criu_core.resources import MappedVma, Vma, VmaClaim, VmaImage

__all__ = ["criu_vma_dump", "criu_vma_pages_restore", "criu_vma_restore"]


@hookspec(firstresult=True)
def criu_vma_dump(ctx: DumpContext, vma: Vma) -> VmaClaim | None:
    """Own one mapping of a frozen task (CRIU's HANDLE_DEVICE_VMA).

    Runs in the dumper once per VMA of every process, before pages are chosen. The built-in handler claims
    every ordinary mapping (anonymous, file-backed, heap, stack, vdso/vvar) and refuses the special ones
    nobody claimed.

    :param ctx: the dump's context.
    :param vma: the mapping, as /proc/PID/smaps shows it.
    :return: a VmaClaim to own it (``skip``, ``skip_content``, extra status bits), ``None`` if it is not yours.
        If it is yours but cannot be dumped, raise a CriuError that says why.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_vma_restore(ctx: RestoreContext, vma: VmaImage, remote: Any) -> MappedVma | None:
    """Map one VMA of the images into the task being restored (CRIU's UPDATE_VMA_MAP for device mappings).

    Runs in the restorer, in address order, after the seed is cleaned and ``PR_SET_MM_MAP`` is applied.
    ``remote`` is the seed's stopped leader; a claimant maps the area itself with injected syscalls (for a
    device: open it, mmap at the new offset) and returns a MappedVma. The built-in handler maps anonymous
    and file mappings.

    :param ctx: the restore's context.
    :param vma: the image's vma_entry with the task's PID.
    :param remote: the seed's leader thread.
    :return: a MappedVma if you mapped it, ``None`` if it is not yours.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec
def criu_vma_pages_restore(ctx: RestoreContext, vma: VmaImage, remote: Any) -> None:
    """The pages of a VMA are written; a plugin may add content the core does not hold (device memory).

    :param ctx: the restore's context.
    :param vma: the VMA whose pages were written.
    :param remote: the seed's leader thread.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """
