"""Built-in memory handler: ordinary mappings (anonymous, file-backed, heap, stack, vdso/vvar, vsyscall)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from criu_core.dumping.mm import classify
from criu_core.hookspecs import hookimpl
from criu_core.resources import VmaClaim

if TYPE_CHECKING:
    from criu_core.context import DumpContext
    from criu_core.resources import Vma

__all__ = ["criu_vma_dump"]

PLUGIN = "builtin.memory"


@hookimpl(trylast=True)
def criu_vma_dump(ctx: DumpContext, vma: Vma) -> VmaClaim | None:
    """Claim every mapping CRIU's own code handles; the status bits say what kind it is."""
    status = classify(vma)
    if status is None:
        return None
    return VmaClaim(plugin=PLUGIN, status=status)
