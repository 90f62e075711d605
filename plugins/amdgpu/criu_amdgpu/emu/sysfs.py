"""Write emulated KFD topology trees (``<root>/sys/class/kfd/kfd/topology``) as plain files.

Values are MI300X-like (reference §4.5). Each GPU links to its NUMA CPU node over PCIe in both directions; GPUs
of one hive get bidirectional XGMI links to every other member and share a non-zero hive_id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from criu_amdgpu.topology import IOLINK_TYPE_PCIE, IOLINK_TYPE_XGMI, TOPOLOGY_DIR

__all__ = ["CPU_PROPERTIES", "GPU_PROPERTIES", "GpuSpec", "write_topology"]

GPU_PROPERTIES: dict[str, int] = {
    "cpu_cores_count": 0, "simd_count": 1216, "mem_banks_count": 1, "caches_count": 104, "io_links_count": 1,
    "p2p_links_count": 0, "cpu_core_id_base": 0, "simd_id_base": 2147487744, "max_waves_per_simd": 8,
    "lds_size_in_kb": 64, "gds_size_in_kb": 0, "num_gws": 64, "wave_front_size": 64, "array_count": 32,
    "simd_arrays_per_engine": 1, "cu_per_simd_array": 10, "simd_per_cu": 4, "max_slots_scratch_cu": 32,
    "gfx_target_version": 90402, "vendor_id": 4098, "device_id": 29857, "location_id": 1280, "domain": 0,
    "drm_render_minor": 128, "hive_id": 0, "num_sdma_engines": 2, "num_sdma_xgmi_engines": 14,
    "num_sdma_queues_per_engine": 8, "num_cp_queues": 24, "max_engine_clk_fcompute": 2100, "local_mem_size": 0,
    "fw_version": 186, "capability": 2893521536, "sdma_fw_version": 24, "unique_id": 1234,
    "max_engine_clk_ccompute": 2400,
}
CPU_PROPERTIES: dict[str, int] = {k: 0 for k in GPU_PROPERTIES} | {"cpu_cores_count": 96}


@dataclass
class GpuSpec:
    """One emulated GPU: its gpu_id, render minor, NUMA CPU node, VRAM, hive (0 = none) and property overrides."""

    gpu_id: int
    render_minor: int = 128
    numa_node: int = 0
    vram_size: int = 206141652992
    hive_id: int = 0
    props: dict[str, int] = field(default_factory=dict)


def _write_props(path: Path, props: dict[str, int]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "properties").write_text("".join(f"{k} {v}\n" for k, v in props.items()))


def write_topology(root: Path, gpus: list[GpuSpec], cpu_nodes: int = 1) -> Path:
    """Create the tree under ``root``; CPU nodes are 0..cpu_nodes-1, GPUs follow in order. Returns ``root``."""
    topo = Path(root) / TOPOLOGY_DIR
    nodes = topo / "nodes"
    nodes.mkdir(parents=True, exist_ok=True)
    (topo / "generation_id").write_text("1\n")
    (topo / "system_properties").write_text("platform_oem 0\nplatform_id 0\nplatform_rev 0\n")
    gpu_node = {i: cpu_nodes + i for i in range(len(gpus))}
    links: dict[int, list[tuple[int, int]]] = {n: [] for n in range(cpu_nodes + len(gpus))}
    for i, g in enumerate(gpus):
        links[gpu_node[i]].append((IOLINK_TYPE_PCIE, g.numa_node))
        links[g.numa_node].append((IOLINK_TYPE_PCIE, gpu_node[i]))
        for j, h in enumerate(gpus):
            if j != i and g.hive_id and h.hive_id == g.hive_id:
                links[gpu_node[i]].append((IOLINK_TYPE_XGMI, gpu_node[j]))
    for n in range(cpu_nodes):
        d = nodes / str(n)
        (d / "io_links").mkdir(parents=True, exist_ok=True)
        for sub in ("mem_banks", "caches", "p2p_links"):
            (d / sub).mkdir(exist_ok=True)
        (d / "gpu_id").write_text("0\n")
        (d / "name").write_text("\n")
        _write_props(d, CPU_PROPERTIES | {"io_links_count": len(links[n])})
    for i, g in enumerate(gpus):
        n = gpu_node[i]
        d = nodes / str(n)
        for sub in ("io_links", "caches", "p2p_links"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "gpu_id").write_text(f"{g.gpu_id}\n")
        (d / "name").write_text("gfx942\n")
        _write_props(d, GPU_PROPERTIES | {"drm_render_minor": g.render_minor, "hive_id": g.hive_id,
                                          "io_links_count": len(links[n])} | g.props)
        _write_props(d / "mem_banks" / "0", {"heap_type": 1, "size_in_bytes": g.vram_size, "flags": 0,
                                              "width": 8192, "mem_clk_max": 1300})
    for n, lst in links.items():
        for k, (ltype, to) in enumerate(lst):
            _write_props(nodes / str(n) / "io_links" / str(k), {
                "type": ltype, "version_major": 0, "version_minor": 0, "node_from": n, "node_to": to,
                "weight": 20 if ltype == IOLINK_TYPE_PCIE else 15, "min_latency": 0, "max_latency": 0,
                "min_bandwidth": 312, "max_bandwidth": 64000, "recommended_transfer_size": 0, "flags": 1})
    return Path(root)
