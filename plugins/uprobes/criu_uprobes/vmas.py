"""What the uprobes plugin decides about the kernel's uprobes mappings, at dump and at restore.

* ``[uprobes]`` (the execute-out-of-line page, one page at TASK_SIZE - 4 KiB, ``--xp``, VmFlags ``ex me io dc
  de``): as CRIU 4.2 (proc_parse.c, image.c). Refused without ``--allow-uprobes``; with it, dropped from the
  images and ``inventory_entry.allow_uprobes`` (field 14) is set, so that CRIU 4.2 and criu-core both demand the
  option at restore. The kernel maps a new one on the next hit after restore.
* ``[uprobes-trampoline]`` (Linux 6.18+, optimised uprobes on 5-byte nops): CRIU 4.2 refuses it as an
  unsupported mapping. We do better under ``--allow-uprobes``: every site that calls into it is put back to a
  plain breakpoint (``int3`` + the nop's tail) in the frozen task, then the page is dropped like ``[uprobes]``.
  See :func:`dump_trampoline_vma` and README.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.errors import CriuError, UnsupportedResource
from criu_core.resources import VmaClaim
from criu_core.stash import StashKey

if TYPE_CHECKING:
    from criu_core.context import DumpContext
    from criu_core.resources import Vma

__all__ = [
    "PLUGIN_NAME",
    "TRAMPOLINE_NAME",
    "UPROBES_SEEN",
    "XOL_NAME",
    "allowed",
    "allowed_in_images",
    "check_inventory",
    "dump_trampoline_vma",
    "dump_uprobes_vma",
]

PLUGIN_NAME = "uprobes"
XOL_NAME = "[uprobes]"
TRAMPOLINE_NAME = "[uprobes-trampoline]"
UNOPTIMISED_HEAD = b"\xcc"  # int3 (x86 UPROBE_SWBP_INSN)
RESTORE_MSG = "Dumped with --allow-uprobes. Need to set it on restore as well."

# PIDs whose uprobes mappings this dump dropped (the run's record; the inventory flag is its visible trace).
UPROBES_SEEN: StashKey[set[int]] = StashKey("uprobes.seen")


def allowed(options: Any) -> bool:
    return bool(getattr(options, "allow_uprobes", False))


def _mark_seen(ctx: DumpContext, vma: Vma) -> None:
    ctx.stash.setdefault(UPROBES_SEEN, set()).add(vma.pid)
    # Only when a uprobes VMA was found, as CRIU 4.2: the option alone does not make restore demand it.
    if ctx.inventory is not None:
        ctx.inventory.allow_uprobes = True


def dump_uprobes_vma(ctx: DumpContext, vma: Vma) -> VmaClaim:
    """The ``[uprobes]`` XOL page: drop it when allowed, else refuse with CRIU 4.2's words."""
    if not allowed(ctx.options):
        raise UnsupportedResource(vma, msg=f"PID {vma.pid} has uprobes vma. Consider using --allow-uprobes")
    ctx.log.debug("Skipping uprobes vma %016x-%016x", vma.start, vma.end)
    _mark_seen(ctx, vma)
    return VmaClaim(plugin=PLUGIN_NAME, skip=True)


def dump_trampoline_vma(ctx: DumpContext, vma: Vma, proc: str = "/proc") -> VmaClaim:
    """The ``[uprobes-trampoline]`` page of optimised uprobes (Linux 6.18+): unoptimise its sites, then drop it.

    Each optimised site holds ``call rel32`` into this page, whose content the kernel generated for this mm and
    whose ``uprobe`` syscall works only from such a page. The dumped code must not keep those calls. The task
    is frozen; every site is rewritten to ``int3`` + the rest of the original nop, the state the kernel itself
    passes through while it optimises or unoptimises a site, so it is a plain uprobe breakpoint again: the
    image then means exactly what a ``[uprobes]`` dump means (the probe must be active at restore), and the
    kernel handles the next hit, here or in the restored task, and may optimise the site again.

    Refused (nothing written) if a thread executes in the page or a word of a thread's stack points into it
    (a signal frame or a half-run trampoline): dump again.
    """
    where = f"{vma.start:x}-{vma.end:x}"
    if not allowed(ctx.options):
        raise UnsupportedResource(
            vma, msg=f"PID {vma.pid} has uprobes vma ({TRAMPOLINE_NAME} {where}). Consider using --allow-uprobes"
        )
    # Imported here: every dump loads this module, only a trampoline needs the text scanner.
    from criu_uprobes.textscan import parse_maps, scan_text, stack_refs, thread_regs, write_text

    maps = parse_maps(vma.pid, proc)
    regs = thread_regs(vma.pid, proc)
    inside = [(tid, f"pc {pc:x}") for tid, (_sp, pc) in regs.items() if vma.start <= pc < vma.end]
    if not inside:  # a signal frame or a half-run trampoline leaves its pc on the stack
        inside = [
            (tid, f"stack word at {refs[0]:x}")
            for tid, (sp, _pc) in regs.items()
            if (refs := stack_refs(vma.pid, sp, vma.start, vma.end, maps, proc))
        ]
    if inside:
        tid, at = inside[0]
        raise UnsupportedResource(
            vma,
            msg=f"PID {vma.pid}: thread {tid} is inside the optimised uprobe trampoline "
            f"{TRAMPOLINE_NAME} {where} ({at}), which cannot be recreated at restore; dump again",
        )
    calls = scan_text(vma.pid, maps, proc).calls_into(vma.start, vma.end)
    for site in calls:
        write_text(vma.pid, site.addr, UNOPTIMISED_HEAD + site.original[1:])
        ctx.log.debug("Unoptimised uprobe site %x (%s:%#x)", site.addr, site.path, site.file_offset)
    ctx.log.debug(
        "Skipping uprobes trampoline vma %016x-%016x (%d site(s) unoptimised)", vma.start, vma.end, len(calls)
    )
    _mark_seen(ctx, vma)
    return VmaClaim(plugin=PLUGIN_NAME, skip=True)


def allowed_in_images(inventory: Any) -> bool:
    """Whether the images were dumped with a uprobes mapping (``inventory_entry.allow_uprobes``)."""
    return inventory is not None and bool(getattr(inventory, "allow_uprobes", False))


def check_inventory(options: Any, inventory: Any) -> None:
    """Restore: images dumped with a uprobes mapping need ``--allow-uprobes`` again (CRIU 4.2 image.c)."""
    if allowed_in_images(inventory) and not allowed(options):
        raise CriuError(RESTORE_MSG)
