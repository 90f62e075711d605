"""Hook implementations of the uprobes plugin (CRIU 4.2's ``--allow-uprobes``).

The mechanics are in :mod:`criu_uprobes.vmas`, :mod:`criu_uprobes.textscan` and :mod:`criu_uprobes.resync`,
imported by the hooks that use them: every ``criu-py`` command loads this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from criu_core.context import DumpContext, RestoreContext
    from criu_core.options import OptionRegistry
    from criu_core.resources import Vma, VmaClaim, VmaImage

__all__ = [
    "CRIU_INVENTORY_NAME",
    "criu_addoption",
    "criu_inventory_check",
    "criu_vma_dump",
    "criu_vma_pages_restore",
]

# CRIU 4.2 handles uprobes in its core: images must not name a plugin it does not have.
CRIU_INVENTORY_NAME = None


@hookimpl
def criu_addoption(parser: OptionRegistry) -> None:
    # CRIU 4.2 has no RPC field for it: RPC users set it in an RPC configuration file ("allow-uprobes").
    parser.add_flag("allow-uprobes", stages=("dump", "restore"), help="allow dump/restore with uprobes vma")
    parser.add_flag(
        "uprobes-resync",
        stages=("restore",),
        help="put the file's bytes back at uprobe breakpoints whose probe is gone, and put in those of "
        "probes added since the dump (criu-core only)",
    )


@hookimpl
def criu_vma_dump(ctx: DumpContext, vma: Vma) -> VmaClaim | None:
    from criu_uprobes import vmas

    if vma.name == vmas.XOL_NAME:  # exact compare, as CRIU: "[uprobes-trampoline]" is not the XOL page
        return vmas.dump_uprobes_vma(ctx, vma)
    if vma.name == vmas.TRAMPOLINE_NAME:
        return vmas.dump_trampoline_vma(ctx, vma)
    return None


@hookimpl
def criu_vma_pages_restore(ctx: RestoreContext, vma: VmaImage, remote: Any) -> None:
    if ctx.options.uprobes_resync:
        from criu_uprobes import resync

        resync.resync_vma(ctx, vma)


@hookimpl
def criu_inventory_check(ctx: RestoreContext, inventory: Any) -> None:
    from criu_uprobes import vmas

    vmas.check_inventory(ctx.options, inventory)
