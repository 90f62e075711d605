"""Find the KFD device and AMD render nodes with pyudev (optional: configuration overrides it).

pyudev cannot be pointed at a fake sysfs and cannot list the topology kobjects, so it stays out of the core logic:
it only suggests defaults for ``--amdgpu-kfd-path`` and ``--amdgpu-dev-root`` on a real machine.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DiscoveredDevices", "discover"]

AMD_PCI_VENDOR = "0x1002"


@dataclass(frozen=True)
class DiscoveredDevices:
    """``kfd``: the device node of KFD (or None); ``render_nodes``: minor → device node of AMD render nodes."""

    kfd: str | None
    render_nodes: dict[int, str]


def discover() -> DiscoveredDevices:
    """Ask udev for ``/dev/kfd`` (subsystem kfd) and renderD* nodes whose PCI parent has vendor 0x1002."""
    try:
        import pyudev
    except ImportError:  # pragma: no cover - pyudev is a dependency, but keep discovery optional
        return DiscoveredDevices(None, {})
    try:
        ctx = pyudev.Context()
        kfd = next((d.device_node for d in ctx.list_devices(subsystem="kfd") if d.device_node), None)
        render: dict[int, str] = {}
        for dev in ctx.list_devices(subsystem="drm"):
            if not (dev.sys_name or "").startswith("renderD") or not dev.device_node:
                continue
            pci = dev.find_parent("pci")
            if pci is not None and pci.attributes.get("vendor") == AMD_PCI_VENDOR.encode():
                render[int(dev.sys_name[len("renderD"):])] = dev.device_node
    except Exception:  # noqa: BLE001 - no udev database in a container: discovery just finds nothing
        return DiscoveredDevices(None, {})
    return DiscoveredDevices(kfd, render)
