"""Render-node (DRM) queries the plugin makes, through the same ``ioctl(cmd, buf)`` seam as the KFD ops.

CRIU 4.2 records a render-node descriptor as its GPU only (``criu_render_node.gpu_id``): buffer objects made through
the render node itself (amdgpu GEM create, imports, userptrs) are not in its images, and its restore remaps only
KFD BOs. We write the same image and refuse, rather than lose, a render node that holds such BOs: the dump asks the
kernel with ``AMDGPU_GEM_LIST_HANDLES`` on our copy of the task's descriptor (the same DRM file, so the task's
handles; KFD BOs have their handles in the KFD's own DRM client, not there) and, on kernels without that ioctl,
looks for mappings of the render node that are no KFD BO.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass

from criu_amdgpu import abi
from criu_amdgpu.kfd import Arrays, KfdDevice, KfdError, call, struct_size

__all__ = ["GemHandle", "list_handles"]


@dataclass(frozen=True)
class GemHandle:
    """One ``drm_amdgpu_gem_list_handles_entry``."""

    handle: int
    flags: int
    size: int
    preferred_domains: int
    alloc_flags: int
    alignment: int

    @property
    def is_import(self) -> bool:
        return bool(self.flags & abi.AMDGPU_GEM_LIST_HANDLES_FLAG_IS_IMPORT)


def list_handles(dev: KfdDevice) -> list[GemHandle] | None:
    """The GEM BOs of the DRM file behind ``dev``, or None where the kernel lacks AMDGPU_GEM_LIST_HANDLES.

    As CRIU's criu-dev plugin: ask with room for 8, and again with the count the kernel reported while it grows.
    """
    esz = struct_size(abi.DrmAmdgpuGemListHandlesEntry)
    room = 8
    while True:
        with Arrays(dev.mem) as arrays:
            entries = arrays.put(bytes(esz * room))
            buf = bytearray(bytes(abi.DrmAmdgpuGemListHandles(entries, room, 0)))
            try:
                call(dev, abi.DRM_IOCTL_AMDGPU_GEM_LIST_HANDLES, buf)
            except KfdError as exc:
                if exc.errno in (_errno.EINVAL, _errno.ENOTTY):  # type: ignore[attr-defined]
                    return None
                raise
            count = abi.DrmAmdgpuGemListHandles.from_buffer_copy(bytes(buf)).num_entries
            if count > room:
                room = count
                continue
            raw = dev.mem.read(entries, esz * count) if count else b""
        out = []
        for i in range(count):
            e = abi.DrmAmdgpuGemListHandlesEntry.from_buffer_copy(raw, i * esz)
            out.append(GemHandle(e.gem_handle, e.flags, e.size, e.preferred_domains, e.alloc_flags, e.alignment))
        return out
