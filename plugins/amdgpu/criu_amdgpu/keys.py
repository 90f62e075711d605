"""The plugin's stash keys and the cheap "could this be one of our devices?" test.

Kept apart from :mod:`criu_amdgpu.state` so that the hooks can answer "not mine" for every ordinary VMA and
descriptor, and for images that never used the plugin, without importing the ioctl, topology and image
machinery (a dump of a process without a GPU should not pay for them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.stash import StashKey

if TYPE_CHECKING:
    from criu_amdgpu.provider import DeviceProvider
    from criu_amdgpu.state import AmdgpuRun

__all__ = ["PROVIDER", "RUN", "device_ids", "maybe_device"]

RUN: StashKey[AmdgpuRun] = StashKey("amdgpu.run")
PROVIDER: StashKey[DeviceProvider] = StashKey("amdgpu.provider")  # set by tests/benchmarks before a run
_IDS: StashKey[tuple[set[tuple[int, int]], set[str]]] = StashKey("amdgpu.device-ids")


def device_ids(ctx: Any) -> tuple[set[tuple[int, int]], set[str]]:
    """(st_dev, st_ino) and paths of the configured KFD device and render nodes, once per run."""
    ids = ctx.stash.get(_IDS, None)
    if ids is None:
        from criu_amdgpu.config import AmdgpuConfig

        provider = ctx.stash.get(PROVIDER, None)
        cfg = provider.config if provider is not None else AmdgpuConfig.from_options(ctx.options)
        kfd, render = cfg.identities()
        idents = set(render) | ({kfd} if kfd is not None else set())
        paths = {cfg.kfd_path} | {cfg.render_path(minor) for minor in render.values()}
        ids = ctx.stash[_IDS] = (idents, paths)
    return ids


def maybe_device(ctx: Any, dev: str | int, ino: int, path: str | None) -> bool:
    """Whether a mapping (``dev`` as /proc/PID/maps prints it) or a descriptor (``dev`` as st_dev) may be ours."""
    from criu_amdgpu.config import maps_dev

    idents, paths = device_ids(ctx)
    return (maps_dev(dev), ino) in idents or (path is not None and path in paths)
