"""Hook implementations of the amdgpu plugin; the mechanics live beside this module.

=====================================  =====================================================================
hook                                   what it does
=====================================  =====================================================================
criu_addoption                         ``--amdgpu-kfd-path``, ``--amdgpu-dev-root``, ``--amdgpu-topology-root``,
                                       ``--amdgpu-copy-engine``, ``--amdgpu-serial-bo-restore``
criu_vma_dump (HANDLE_DEVICE_VMA)      claims mappings of the KFD device and render nodes (no pages dumped)
criu_file_dump (DUMP_EXT_FILE)         checkpoints a KFD descriptor / records a render-node descriptor
criu_devices_dump_late                 refuses render nodes holding GEM BOs, writes render-node images, UNPAUSEs
criu_devices_restore_init              reads the images, matches GPUs (fails before anything is created)
criu_vma_restore (UPDATE_VMA_MAP)      RESTOREs the task's KFD process from inside it, maps device VMAs
criu_ext_file_restore                  hands the core copies of the task's KFD/render descriptors (RESTOREs
                                       from inside the task first if no device VMA did)
criu_task_restore                      closes the plugin's temporary descriptors in the task
criu_devices_resume_late               joins the BO copy workers, RESUMEs the task
criu_fini                              UNPAUSEs whatever a failed dump left paused
criu_check_features                    ``criu-py check``: KFD ioctl version and GPUs of the topology
=====================================  =====================================================================
"""

from __future__ import annotations

from typing import Any

from criu_core.hookspecs import hookimpl

# The mechanics (ctypes ioctls, protobuf images, topology) are imported on first use: loading the plugin must
# stay cheap for `criu-py --help`, `plugins` and `check`, which never reach them.


def _dump() -> Any:
    from criu_amdgpu import dump

    return dump


def _restore() -> Any:
    from criu_amdgpu import restore

    return restore


def _run(ctx: Any) -> Any:
    from criu_amdgpu.state import get_run

    return get_run(ctx)


def _existing_run(ctx: Any) -> Any:
    from criu_amdgpu.keys import RUN

    return ctx.stash.get(RUN, None)


def _images_need_us(ctx: Any) -> bool:
    """At restore: images whose inventory does not name the plugin hold nothing of ours."""
    inv = getattr(ctx, "inventory", None)
    if inv is None or not inv.HasField("plugins_entry"):
        return inv is None
    return CRIU_INVENTORY_NAME in inv.plugins_entry.plugins

__all__ = [
    "CRIU_INVENTORY_NAME",
    "criu_addoption",
    "criu_check_features",
    "criu_devices_dump_late",
    "criu_devices_restore_init",
    "criu_devices_resume_late",
    "criu_ext_file_restore",
    "criu_file_dump",
    "criu_fini",
    "criu_init",
    "criu_task_restore",
    "criu_vma_dump",
    "criu_vma_restore",
]

CRIU_INVENTORY_NAME = "amdgpu_plugin"  # the name CRIU's own amdgpu plugin records in the inventory


@hookimpl
def criu_addoption(parser: Any) -> None:
    from criu_amdgpu.config import add_options

    add_options(parser)


@hookimpl
def criu_init(ctx: Any, stage: str) -> None:
    ctx.log.debug("amdgpu: %s", stage)  # the device state is set up when a device is met


@hookimpl
def criu_vma_dump(ctx: Any, vma: Any) -> Any:
    from criu_amdgpu.keys import maybe_device

    if not maybe_device(ctx, vma.dev, vma.inode, vma.path or vma.name):
        return None
    return _dump().claim_vma(_run(ctx), vma)


@hookimpl
def criu_file_dump(ctx: Any, fd: Any) -> Any:
    from criu_amdgpu.keys import maybe_device

    if not maybe_device(ctx, fd.dev, fd.ino, fd.link):
        return None
    run = _run(ctx)
    kind = _dump().classify(run, fd.dev, fd.ino, fd.link)
    if kind is None:
        return None
    if kind[0] == "kfd":
        return _dump().dump_kfd(ctx, run, fd)
    return _dump().dump_render(ctx, run, fd, kind[1])


@hookimpl
def criu_devices_dump_late(ctx: Any, task: Any) -> None:
    run = _existing_run(ctx)
    if run is not None:
        _dump().dump_late(ctx, run, task.pid)


@hookimpl
def criu_devices_restore_init(ctx: Any) -> None:
    if _images_need_us(ctx):
        _restore().plan(ctx, _run(ctx))


@hookimpl
def criu_vma_restore(ctx: Any, vma: Any, remote: Any) -> Any:
    if not _images_need_us(ctx):
        return None
    return _restore().map_vma(ctx, _run(ctx), vma, remote)


@hookimpl
def criu_ext_file_restore(ctx: Any, file: Any, remote: Any) -> Any:
    if not _images_need_us(ctx):
        return None
    return _restore().restore_file(ctx, _run(ctx), file, remote)


@hookimpl
def criu_task_restore(ctx: Any, task: Any, remote: Any) -> None:
    run = _existing_run(ctx)
    if run is not None:
        _restore().close_task_fds(run, task.pid)


@hookimpl
def criu_devices_resume_late(ctx: Any, task: Any) -> None:
    run = _existing_run(ctx)
    if run is not None:
        _restore().resume(ctx, run, task.pid)


@hookimpl
def criu_fini(ctx: Any, stage: str, success: bool) -> None:
    run = _existing_run(ctx)
    if run is None:
        return
    if stage in ("dump", "pre-dump"):
        # the core calls fini while the tree is still seized, from the tracer thread: UNPAUSE is still allowed
        _dump().unpause_all(ctx, run)
    elif run.bo is not None and not success:
        try:
            run.bo.join()
        except Exception as exc:  # noqa: BLE001 - the restore already failed; say why the copies did too
            ctx.log.error("amdgpu: %s", exc)
    release = getattr(run.provider, "release_engine", None)
    if release is not None:
        for line in release():  # the SDMA devices go; say where the auto engine fell back to plain copies
            ctx.log.info("amdgpu: %s", line)


@hookimpl
def criu_check_features(ctx: Any) -> list[tuple[str, bool, str]]:
    from criu_amdgpu import features

    return features.probe(_run(ctx))
