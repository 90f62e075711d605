"""KFD topology: parse ``/sys/class/kfd/kfd/topology/nodes`` and map checkpointed GPUs onto this machine's GPUs.

The sysfs root is configurable (``--amdgpu-topology-root``), so tests and the emulated device point it at a tree of
plain files. Parsing follows CRIU's rules (reference §4.1): numeric node names only, nodes whose ``gpu_id`` cannot be
read are skipped (cgroup-masked GPUs), every ``properties`` line is ``name value``, a GPU takes its VRAM from the
first public/private memory bank, only PCIe (2) and XGMI (11) io_links are kept. Nodes are sorted numerically
(CRIU uses readdir order, which makes its matching nondeterministic).

Matching (§4.4) backtracks over XGMI hives first, then over the remaining GPUs, checking properties, link counts and
(by default) that the GPUs' NUMA CPU nodes map consistently. The environment overrides of CRIU's plugin are honoured
(``KFD_CAPABILITY_CHECK``, ``KFD_VRAM_SIZE_CHECK``, ``KFD_NUM_GWS_CHECK``, ``KFD_CACHES_COUNT_CHECK``,
``KFD_FW_VER_CHECK``, ``KFD_SDMA_FW_VER_CHECK``, ``KFD_NUMA_CHECK``; ``0``/``NO`` or ``1``/``YES``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from criu_core.errors import CriuError

__all__ = [
    "DEVICE_PROPERTIES",
    "IOLINK_TYPE_PCIE",
    "IOLINK_TYPE_XGMI",
    "TOPOLOGY_DIR",
    "GpuMap",
    "GpuMatchError",
    "IoLink",
    "MatchChecks",
    "TopoNode",
    "Topology",
    "TopologyError",
    "match_gpus",
    "parse_topology",
]

TOPOLOGY_DIR = "sys/class/kfd/kfd/topology"
IOLINK_TYPE_PCIE = 2
IOLINK_TYPE_XGMI = 11

# The u32 properties an image stores per device, in kfd_device_entry order (hive_id is u64).
DEVICE_PROPERTIES = (
    "cpu_cores_count", "simd_count", "mem_banks_count", "caches_count", "io_links_count", "max_waves_per_simd",
    "lds_size_in_kb", "gds_size_in_kb", "num_gws", "wave_front_size", "array_count", "simd_arrays_per_engine",
    "cu_per_simd_array", "simd_per_cu", "max_slots_scratch_cu", "vendor_id", "device_id", "domain",
    "drm_render_minor", "hive_id", "num_sdma_engines", "num_sdma_xgmi_engines", "num_sdma_queues_per_engine",
    "num_cp_queues", "fw_version", "capability", "sdma_fw_version",
)
_MUST_EQUAL = (
    "simd_count", "mem_banks_count", "io_links_count", "max_waves_per_simd", "lds_size_in_kb", "wave_front_size",
    "array_count", "simd_arrays_per_engine", "cu_per_simd_array", "simd_per_cu", "max_slots_scratch_cu", "vendor_id",
    "device_id", "num_sdma_engines", "num_sdma_xgmi_engines", "num_sdma_queues_per_engine", "num_cp_queues",
)


class TopologyError(CriuError):
    """The KFD topology cannot be read or is inconsistent."""


class GpuMatchError(CriuError):
    """This machine cannot host the checkpointed GPUs; the message names what is missing."""


@dataclass
class IoLink:
    """One io_link of a node: its type (2 PCIe, 11 XGMI) and the node it leads to."""

    type: int
    node_to: int
    valid: bool = False
    bidirectional: bool = False


@dataclass
class TopoNode:
    """One topology node: a CPU (``gpu_id`` 0) or a GPU, with its properties and io_links."""

    node_id: int
    gpu_id: int
    props: dict[str, int] = field(default_factory=dict)
    vram_public: bool = False
    vram_size: int = 0
    links: list[IoLink] = field(default_factory=list)

    @property
    def is_gpu(self) -> bool:
        return self.gpu_id != 0

    def prop(self, name: str) -> int:
        return self.props.get(name, 0)

    @property
    def render_minor(self) -> int:
        return self.prop("drm_render_minor")

    def valid_links(self) -> list[IoLink]:
        return [link for link in self.links if link.valid]

    def describe(self) -> str:
        return (f"GPU {self.gpu_id:#06x} (node {self.node_id}, device_id {self.prop('device_id'):#x}, "
                f"VRAM {self.vram_size >> 20} MiB)")


@dataclass
class Topology:
    """The nodes of one machine (or of a checkpoint), sorted by node id."""

    nodes: list[TopoNode] = field(default_factory=list)

    @property
    def gpus(self) -> list[TopoNode]:
        return [n for n in self.nodes if n.is_gpu]

    @property
    def cpus(self) -> list[TopoNode]:
        return [n for n in self.nodes if not n.is_gpu]

    def node(self, node_id: int) -> TopoNode | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def gpu(self, gpu_id: int) -> TopoNode | None:
        return next((n for n in self.nodes if n.gpu_id == gpu_id and n.is_gpu), None)

    def validate_links(self) -> None:
        """A link is valid iff its target node exists; bidirectional iff the target links back with the same type."""
        ids = {n.node_id for n in self.nodes}
        for n in self.nodes:
            for link in n.links:
                link.valid = link.node_to in ids
        for n in self.nodes:
            for link in n.links:
                peer = self.node(link.node_to)
                link.bidirectional = bool(link.valid and peer and any(
                    back.valid and back.type == link.type and back.node_to == n.node_id for back in peer.links))

    def hives(self) -> list[list[TopoNode]]:
        """XGMI hives: GPUs connected by bidirectional XGMI links (connected components), each sorted by node id."""
        self.validate_links()
        seen: set[int] = set()
        hives = []
        for gpu in self.gpus:
            if gpu.node_id in seen:
                continue
            group, todo = [], [gpu]
            while todo:
                n = todo.pop()
                if n.node_id in seen:
                    continue
                seen.add(n.node_id)
                group.append(n)
                for link in n.links:
                    peer = self.node(link.node_to)
                    if link.type == IOLINK_TYPE_XGMI and link.bidirectional and peer and peer.is_gpu:
                        todo.append(peer)
            if len(group) > 1:
                hives.append(sorted(group, key=lambda g: g.node_id))
        return hives


# ---------------------------------------------------------------------------------------------- parsing


def _read_props(path: Path) -> dict[str, int]:
    props: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read: {exc.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) > 64 or not parts[1].isdigit():
            raise TopologyError(f"{path}:{lineno}: expected 'name value', got {line!r}")
        props[parts[0]] = int(parts[1])
    return props


def _numeric_dirs(path: Path) -> list[Path]:
    try:
        entries = [p for p in path.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    return sorted(entries, key=lambda p: int(p.name))


def parse_topology(root: str | os.PathLike[str] = "/") -> Topology:
    """Read the KFD topology under ``<root>/sys/class/kfd/kfd/topology/nodes``."""
    nodes_dir = Path(root) / TOPOLOGY_DIR / "nodes"
    if not nodes_dir.is_dir():
        raise TopologyError(f"{nodes_dir}: no KFD topology (is amdgpu loaded, is --amdgpu-topology-root right?)")
    topo = Topology()
    for ndir in _numeric_dirs(nodes_dir):
        try:
            gpu_id = int((ndir / "gpu_id").read_text().strip() or "0")
        except (OSError, ValueError):
            continue  # a GPU the cgroup hides from us: EPERM on gpu_id
        node = TopoNode(int(ndir.name), gpu_id, _read_props(ndir / "properties"))
        if node.is_gpu:
            for bank in _numeric_dirs(ndir / "mem_banks"):
                bprops = _read_props(bank / "properties")
                if bprops.get("heap_type") in (1, 2):  # HSA_MEM_HEAP_TYPE_FB_PUBLIC / FB_PRIVATE
                    node.vram_public = bprops["heap_type"] == 1
                    node.vram_size = bprops.get("size_in_bytes", 0)
                    break
            if not node.vram_size:
                raise TopologyError(f"{ndir}: GPU {gpu_id:#06x} has no frame-buffer memory bank")
        if not (ndir / "io_links").is_dir():
            raise TopologyError(f"{ndir}/io_links: missing")
        for ldir in _numeric_dirs(ndir / "io_links"):
            lprops = _read_props(ldir / "properties")
            if lprops.get("type") in (IOLINK_TYPE_PCIE, IOLINK_TYPE_XGMI):
                node.links.append(IoLink(lprops["type"], lprops.get("node_to", 0)))
        topo.nodes.append(node)
    topo.validate_links()
    return topo


# ---------------------------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class MatchChecks:
    """Which optional checks run (CRIU's environment overrides; all on by default)."""

    capability: bool = True
    vram_size: bool = True
    num_gws: bool = True
    caches_count: bool = True
    fw_version: bool = True
    sdma_fw_version: bool = True
    numa: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MatchChecks:
        env = os.environ if env is None else env
        names = {"capability": "KFD_CAPABILITY_CHECK", "vram_size": "KFD_VRAM_SIZE_CHECK",
                 "num_gws": "KFD_NUM_GWS_CHECK", "caches_count": "KFD_CACHES_COUNT_CHECK",
                 "fw_version": "KFD_FW_VER_CHECK", "sdma_fw_version": "KFD_SDMA_FW_VER_CHECK",
                 "numa": "KFD_NUMA_CHECK"}
        values = {}
        for attr, var in names.items():
            raw = env.get(var)
            if raw is None:
                continue
            if raw.strip().upper() in ("0", "NO"):
                values[attr] = False
            elif raw.strip().upper() in ("1", "YES"):
                values[attr] = True
            else:
                raise CriuError(f"{var}={raw!r}: expected 0/NO or 1/YES")
        return cls(**values)


@dataclass
class GpuMap:
    """Checkpointed gpu_id → local gpu_id, and checkpointed CPU node → local CPU node."""

    gpus: dict[int, int] = field(default_factory=dict)
    cpus: dict[int, int] = field(default_factory=dict)


def _mismatch(src: TopoNode, dst: TopoNode, checks: MatchChecks) -> str | None:
    """Why ``dst`` cannot host ``src`` on properties alone, or None."""
    for name in _MUST_EQUAL:
        if src.prop(name) != dst.prop(name):
            return f"{name} {dst.prop(name)} != {src.prop(name)}"
    if src.vram_public != dst.vram_public:
        return "host-visible VRAM differs"
    if checks.capability and src.prop("capability") != dst.prop("capability"):
        return f"capability {dst.prop('capability'):#x} != {src.prop('capability'):#x} (KFD_CAPABILITY_CHECK=0 skips)"
    if checks.vram_size and src.vram_size > dst.vram_size:
        return f"VRAM {dst.vram_size >> 20} MiB < {src.vram_size >> 20} MiB (KFD_VRAM_SIZE_CHECK=0 skips)"
    for name, on, var in (("num_gws", checks.num_gws, "KFD_NUM_GWS_CHECK"),
                          ("caches_count", checks.caches_count, "KFD_CACHES_COUNT_CHECK"),
                          ("fw_version", checks.fw_version, "KFD_FW_VER_CHECK"),
                          ("sdma_fw_version", checks.sdma_fw_version, "KFD_SDMA_FW_VER_CHECK")):
        if on and src.prop(name) > dst.prop(name):
            return f"{name} {dst.prop(name)} < {src.prop(name)} ({var}=0 skips)"
    if len(src.valid_links()) > len(dst.valid_links()):
        return f"{len(dst.valid_links())} io_links < {len(src.valid_links())}"
    return None


class _Matcher:
    def __init__(self, src: Topology, dst: Topology, checks: MatchChecks) -> None:
        self.src, self.dst, self.checks = src, dst, checks
        self.map = GpuMap()
        self.used: set[int] = set()

    def _links_ok(self, s: TopoNode, d: TopoNode) -> bool:
        """Each src link to a CPU has a compatible dst link (to the mapped CPU node with the NUMA check)."""
        for sl in s.valid_links():
            target = self.src.node(sl.node_to)
            if target is None or target.is_gpu:
                continue  # GPU-GPU links are not compared (hives cover XGMI)
            candidates = []
            for dl in d.valid_links():
                dtarget = self.dst.node(dl.node_to)
                if dtarget is None or dtarget.is_gpu:
                    continue
                if sl.type == IOLINK_TYPE_XGMI and dl.type != IOLINK_TYPE_XGMI:
                    continue
                if sl.bidirectional and not dl.bidirectional:
                    continue
                candidates.append(dtarget.node_id)
            if self.checks.numa:
                mapped = self.map.cpus.get(target.node_id)
                if mapped is not None:
                    if mapped not in candidates:
                        return False
                else:
                    free = [c for c in candidates if c not in self.map.cpus.values()]
                    if not free:
                        return False
                    self.map.cpus[target.node_id] = free[0]
            elif not candidates:
                return False
        return True

    def assign(self, srcs: list[TopoNode], allowed: list[TopoNode], cont) -> bool:
        if not srcs:
            return cont()
        s = srcs[0]
        for d in allowed:
            if d.gpu_id in self.used or _mismatch(s, d, self.checks):
                continue
            saved_cpus = dict(self.map.cpus)
            if self._links_ok(s, d):
                self.used.add(d.gpu_id)
                self.map.gpus[s.gpu_id] = d.gpu_id
                if self.assign(srcs[1:], allowed, cont):
                    return True
                self.used.discard(d.gpu_id)
                del self.map.gpus[s.gpu_id]
            self.map.cpus = saved_cpus
        return False

    def solve(self) -> bool:
        src_hives, dst_hives = self.src.hives(), self.dst.hives()
        in_hive = {g.gpu_id for h in src_hives for g in h}
        rest = [g for g in self.src.gpus if g.gpu_id not in in_hive]
        used_hives: set[int] = set()

        def hives(i: int) -> bool:
            if i == len(src_hives):
                return self.assign(rest, self.dst.gpus, lambda: True)
            for j, dh in enumerate(dst_hives):
                if j in used_hives or len(dh) < len(src_hives[i]):
                    continue
                used_hives.add(j)
                if self.assign(src_hives[i], dh, lambda: hives(i + 1)):
                    return True
                used_hives.discard(j)
            return False

        return hives(0)


def match_gpus(src: Topology, dst: Topology, checks: MatchChecks | None = None) -> GpuMap:
    """Map every checkpointed GPU to a distinct local GPU, or raise GpuMatchError naming what is missing.

    The kernel's RESTORE needs a device bucket for every local KFD device, so the GPU counts must be equal
    (a larger machine must hide the extra GPUs from the restored task, e.g. with a device cgroup).
    """
    checks = checks or MatchChecks()
    src.validate_links()
    dst.validate_links()
    if len(src.gpus) != len(dst.gpus):
        raise GpuMatchError(f"the checkpoint has {len(src.gpus)} GPU(s), this machine {len(dst.gpus)}: KFD restores "
                            "onto exactly as many GPUs (hide the others from the restored task)")
    if len(src.hives()) > len(dst.hives()):
        raise GpuMatchError(f"the checkpoint has {len(src.hives())} XGMI hive(s), this machine {len(dst.hives())}")
    m = _Matcher(src, dst, checks)
    if m.solve():
        return m.map
    raise GpuMatchError(_explain(src, dst, checks))


def _explain(src: Topology, dst: Topology, checks: MatchChecks) -> str:
    for s in src.gpus:
        reasons = [f"{d.gpu_id:#06x}: {why}" for d in dst.gpus if (why := _mismatch(s, d, checks))]
        if len(reasons) == len(dst.gpus):
            return f"no local GPU can host checkpointed {s.describe()}: " + "; ".join(reasons)
    hives = src.hives()
    if hives:
        sizes = ", ".join(str(len(h)) for h in hives)
        return (f"the checkpointed GPUs cannot be placed: XGMI hives of {sizes} GPUs need matching local hives "
                f"(local: {', '.join(str(len(h)) for h in dst.hives()) or 'none'}), or NUMA placement differs "
                "(KFD_NUMA_CHECK=0 skips)")
    return "the checkpointed GPUs cannot be placed on distinct local GPUs with the same NUMA layout " \
           "(KFD_NUMA_CHECK=0 skips)"
