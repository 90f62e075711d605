"""``criu-py check`` probes of the amdgpu plugin."""

from __future__ import annotations

import os

from criu_core.errors import CriuError

from criu_amdgpu import kfd
from criu_amdgpu.state import AmdgpuRun

__all__ = ["probe"]


def probe(run: AmdgpuRun) -> list[tuple[str, bool, str]]:
    """Is there a KFD with the CRIU ioctls, and a topology with GPUs?"""
    out = []
    path = run.config.kfd_path
    if not os.path.exists(path):
        return [("amdgpu: KFD checkpoint/restore", False, f"{path} does not exist (no AMD GPU, or amdgpu not loaded)")]
    try:
        dev, fd = run.provider.own_device()
        try:
            major, minor = kfd.check_version(dev)
        finally:
            os.close(fd)
        out.append(("amdgpu: KFD checkpoint/restore", True, f"{path}: KFD ioctl version {major}.{minor}"))
    except CriuError as exc:
        out.append(("amdgpu: KFD checkpoint/restore", False, str(exc)))
    try:
        gpus = run.local_topology().gpus
        out.append(("amdgpu: KFD topology", bool(gpus),
                    ", ".join(f"{g.gpu_id:04x} (renderD{g.render_minor})" for g in gpus) or "no GPU nodes"))
    except CriuError as exc:
        out.append(("amdgpu: KFD topology", False, str(exc)))
    try:
        from criu_amdgpu.libdrm import load

        load()
        out.append(("amdgpu: SDMA copy engine", True, "libdrm_amdgpu loads (device initialised per GPU at first copy)"))
    except CriuError as exc:
        why = f"{exc}; BO contents are copied by the CPU (GTT and host-visible VRAM only)"
        out.append(("amdgpu: SDMA copy engine", False, why))
    return out
