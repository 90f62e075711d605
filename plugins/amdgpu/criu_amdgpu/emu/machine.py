"""An emulated AMD GPU machine on disk: device stand-ins, a KFD topology tree, the emulated KFD and a provider."""

from __future__ import annotations

from pathlib import Path

from criu_amdgpu.config import AmdgpuConfig
from criu_amdgpu.emu.model import FakeGpu, FakeKfd
from criu_amdgpu.emu.provider import FakeProvider
from criu_amdgpu.emu.sysfs import GpuSpec, write_topology
from criu_amdgpu.engines import CopyEngine

__all__ = ["EmulatedMachine"]


class EmulatedMachine:
    """``root/dev/{kfd,dri/renderD*,shm}`` as plain files, ``root/sys/...`` topology, and the emulated driver."""

    def __init__(self, root: Path, gpus: list[GpuSpec], cpu_nodes: int = 1, engine: CopyEngine | None = None,
                 serial_bo_restore: bool = False) -> None:
        self.root = Path(root)
        dev = self.root / "dev"
        (dev / "dri").mkdir(parents=True, exist_ok=True)
        (dev / "shm").mkdir(exist_ok=True)
        (dev / "kfd").touch()
        for g in gpus:
            (dev / "dri" / f"renderD{g.render_minor}").touch()
        write_topology(self.root, gpus, cpu_nodes)
        self.config = AmdgpuConfig(kfd_path=str(dev / "kfd"), dev_root=str(dev), topology_root=str(self.root),
                                   copy_engine="plain", serial_bo_restore=serial_bo_restore, env={})
        self.kfd = FakeKfd([FakeGpu(g.gpu_id, g.render_minor) for g in gpus])
        self.provider = FakeProvider(self.kfd, self.config, engine)

    def close(self) -> None:
        self.kfd.close()
