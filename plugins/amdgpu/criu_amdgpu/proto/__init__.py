"""The plugin's protobuf messages (``amdgpu.proto``) and the generated module.

Regenerate from ``plugins/amdgpu`` with::

    python -m grpc_tools.protoc -I. --python_out=. criu_amdgpu/proto/amdgpu.proto
"""

from __future__ import annotations

from criu_amdgpu.proto.amdgpu_pb2 import (
    criu_dmabuf_node,
    criu_kfd,
    criu_render_node,
    dev_iolink,
    kfd_bo_entry,
    kfd_device_entry,
)

__all__ = ["criu_dmabuf_node", "criu_kfd", "criu_render_node", "dev_iolink", "kfd_bo_entry", "kfd_device_entry"]
