"""criu-plugin-amdgpu: checkpoint and restore of AMD GPU processes through /dev/kfd."""

from __future__ import annotations

__all__: list[str] = []
