"""criu-plugin-netns: network namespaces (links, addresses, routes) through pyroute2."""

from __future__ import annotations

__all__: list[str] = []
