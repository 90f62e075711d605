"""A DeviceProvider over the in-process emulated KFD (tests, benchmark).

Put it in the context's stash under :data:`criu_amdgpu.state.PROVIDER` before the first hook runs. The emulated
``/dev/kfd`` and render nodes are plain files at the configured paths (so descriptors and mappings are recognised
exactly as on a FUSE-emulated device); "the task" is this process, so dmabuf stand-ins, task descriptors and the
restorer's copies all live in our fd table.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from criu_amdgpu.config import AmdgpuConfig
from criu_amdgpu.emu.model import FakeDrmDevice, FakeDrmFile, FakeKfd, FakeKfdDevice, FakeKfdFile
from criu_amdgpu.engines import CopyEngine, PlainEngine
from criu_amdgpu.kfd import KfdDevice
from criu_amdgpu.topology import Topology, parse_topology

__all__ = ["FakeProvider", "FakeTaskSide"]


class FakeTaskSide:
    """A restored task played by this process: ``mapped`` records the device mmaps it was asked for."""

    def __init__(self, kfd: FakeKfd, pid: int, config: AmdgpuConfig) -> None:
        self.kfd, self.pid, self.config = kfd, pid, config
        self.files: dict[int, FakeKfdFile] = {}
        self.opened: list[tuple[str, int]] = []
        self.mapped: list[tuple[int, int, int, int, int, int]] = []

    def open(self, path: str, flags: int) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC)
        if path == self.config.kfd_path:
            self.files[fd] = self.kfd.open(self.pid)
        self.opened.append((path, fd))
        return fd

    def kfd_device(self, task_fd: int) -> KfdDevice:
        return FakeKfdDevice(self.kfd, self.files[task_fd])

    def getfd(self, task_fd: int) -> int:
        return os.dup(task_fd)

    def close(self, task_fd: int) -> None:
        self.files.pop(task_fd, None)
        os.close(task_fd)

    def mmap(self, addr: int, length: int, prot: int, flags: int, task_fd: int, offset: int) -> int:
        self.mapped.append((addr, length, prot, flags, task_fd, offset))
        return addr


class FakeProvider:
    """Devices of the emulated machine ``kfd`` at ``config``'s paths.

    ``attach(local_fd, file)`` says which emulated KFD file a dumper-side descriptor copy refers to; CRIU_OPs on it
    come from this thread, which must be the target's tracer for the emulated kernel to accept them.
    """

    def __init__(self, kfd: FakeKfd, config: AmdgpuConfig, engine: CopyEngine | None = None) -> None:
        self.kfd, self.config = kfd, config
        self._engine = engine
        self.dumper_files: dict[int, FakeKfdFile] = {}
        self.dumper_render: dict[int, FakeDrmFile] = {}
        self.sides: dict[int, FakeTaskSide] = {}

    def attach(self, local_fd: int, file: FakeKfdFile) -> None:
        self.dumper_files[local_fd] = file

    def attach_render(self, local_fd: int, file: FakeDrmFile) -> None:
        """Which emulated render file a dumper-side descriptor copy refers to (else: one without GEM BOs)."""
        self.dumper_render[local_fd] = file

    def render_device(self, fd: Any) -> KfdDevice:
        file = self.dumper_render.get(fd.local_fd)
        if file is None:
            file = FakeDrmFile(fd.pid, 0)
        return FakeDrmDevice(self.kfd, file)

    def own_device(self) -> tuple[KfdDevice, int]:
        fd = os.open(self.config.kfd_path, os.O_RDWR | os.O_CLOEXEC)
        return FakeKfdDevice(self.kfd, self.kfd.open(os.getpid())), fd

    def task_device(self, fd: Any) -> KfdDevice:
        return FakeKfdDevice(self.kfd, self.dumper_files[fd.local_fd], caller=os.getpid(),
                             caller_tid=threading.get_native_id())

    def task_side(self, pid: int, remote: Any, fd_alloc: Any = None) -> FakeTaskSide:
        side = self.sides[pid] = FakeTaskSide(self.kfd, pid, self.config)
        return side

    def engine(self) -> CopyEngine:
        return self._engine or PlainEngine()

    def local_topology(self) -> Topology:
        return parse_topology(self.config.topology_root)
