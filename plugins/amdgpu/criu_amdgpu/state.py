"""Per-run state of the plugin, kept in the context's stash (never in module globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from criu_amdgpu.bo_restore import BoRestorer
from criu_amdgpu.config import AmdgpuConfig
from criu_amdgpu.keys import PROVIDER, RUN
from criu_amdgpu.kfd import BoBucket, KfdDevice
from criu_amdgpu.provider import DeviceProvider, RealProvider, TaskSide
from criu_amdgpu.topology import GpuMap, Topology

__all__ = ["PROVIDER", "RUN", "AmdgpuRun", "DumpedKfd", "DumpedRender", "RestoredTask", "get_run"]


@dataclass
class DumpedKfd:
    """A KFD descriptor checkpointed at dump: kept (with its device) until UNPAUSE."""

    file_id: int
    pid: int
    device: KfdDevice
    actual_to_user: dict[int, int]
    paused: bool = True
    entry: Any = None  # the file_entry we returned: the core may set its own id on it
    gpu_ids: list[int] = field(default_factory=list)  # user ids with a pages file
    bo_keys: set[tuple[int, int]] = field(default_factory=set)  # (addr, mmap offset) of every KFD BO
    # CHECKPOINT's BOs while their contents wait for dump-late (some came without a dmabuf): their dmabuf fds are
    # ours until then
    pending: list[BoBucket] | None = None


@dataclass
class DumpedRender:
    """A render-node descriptor: its image is written once the user gpu_ids are known (dump-late)."""

    file_id: int
    pid: int
    minor: int
    written: bool = False
    entry: Any = None
    fd: int = -1  # the task's descriptor number
    device: KfdDevice | None = None  # ioctls on our copy of it (the same DRM file)
    local_fd: int = -1  # the core's copy of it (FdInfo.local_fd: open until the dump's fini has run)


@dataclass
class RestoredTask:
    """What the KFD RESTORE gave one task: its descriptors (task-side numbers) and the BOs' new offsets."""

    pid: int
    file_id: int
    side: TaskSide
    kfd_fd: int
    render_fds: dict[int, int] = field(default_factory=dict)  # local gpu_id -> task fd (the RESTORE drm_fd)
    bos: list[BoBucket] = field(default_factory=list)
    gpu_map: dict[int, int] = field(default_factory=dict)  # user gpu_id -> local gpu_id
    fds_handed_out: set[int] = field(default_factory=set)
    closed: bool = False


@dataclass
class AmdgpuRun:
    config: AmdgpuConfig
    provider: DeviceProvider
    topology: Topology | None = None
    # dump
    kfd_fds: list[DumpedKfd] = field(default_factory=list)
    render_fds: list[DumpedRender] = field(default_factory=list)
    render_vmas: list[Any] = field(default_factory=list)  # claimed mappings of render nodes (Vma, minor)
    # restore
    kfd_images: dict[int, Any] = field(default_factory=dict)  # file_id -> criu_kfd
    render_images: dict[int, Any] = field(default_factory=dict)  # file_id -> criu_render_node
    gpu_maps: dict[int, GpuMap] = field(default_factory=dict)  # kfd file_id -> its GPU map
    restored: dict[int, RestoredTask] = field(default_factory=dict)  # pid -> ...
    bo: BoRestorer | None = None
    _identities: tuple[tuple[int, int] | None, dict[tuple[int, int], int]] | None = None

    def identities(self) -> tuple[tuple[int, int] | None, dict[tuple[int, int], int]]:
        """The configured devices' (st_dev, st_ino), stat'ed once per run (every VMA and fd is checked)."""
        if self._identities is None:
            self._identities = self.config.identities()
        return self._identities

    def local_topology(self) -> Topology:
        if self.topology is None:
            self.topology = self.provider.local_topology()
        return self.topology




def get_run(ctx: Any) -> AmdgpuRun:
    """This run's state, created on first use from the options (and a provider a test put in the stash)."""
    run = ctx.stash.get(RUN, None)
    if run is None:
        provider = ctx.stash.get(PROVIDER, None)
        config = provider.config if provider is not None else AmdgpuConfig.from_options(ctx.options)
        run = AmdgpuRun(config, provider or RealProvider(config))
        ctx.stash[RUN] = run
    return run
