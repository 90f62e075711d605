"""criu-plugin-cuda-stub: checkpoint and restore of CUDA processes through NVIDIA's cuda-checkpoint utility."""

from __future__ import annotations

__all__: list[str] = []
