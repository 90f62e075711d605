"""Where the plugin finds its devices: command-line options, then environment variables, then the defaults.

Paths are configuration, never constants, because the emulated ``/dev/kfd`` is a regular file on a FUSE mount
(no character-device major to key on) and tests point the topology at a tree of plain files. Descriptors and
mappings are recognised by the identity (st_dev, st_ino) of the configured paths, which works for both.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from criu_core.errors import UsageError
from criu_core.records import dataclass, field

__all__ = ["ENGINES", "ENV", "AmdgpuConfig", "add_options", "maps_dev"]

ENV = {
    "kfd_path": "CRIU_AMDGPU_KFD_PATH",
    "dev_root": "CRIU_AMDGPU_DEV_ROOT",
    "topology_root": "CRIU_AMDGPU_TOPOLOGY_ROOT",
    "copy_engine": "CRIU_AMDGPU_COPY_ENGINE",
}
ENGINES = ("auto", "plain", "sdma")


def add_options(parser: Any) -> None:
    """The plugin's command-line options (``criu_addoption``)."""
    stages = ("dump", "pre-dump", "restore", "check")
    parser.add_option("amdgpu-kfd-path", stages=stages,
                      help=f"the KFD device (default /dev/kfd, or ${ENV['kfd_path']})")
    parser.add_option("amdgpu-dev-root", stages=stages,
                      help=f"directory holding dri/renderD* and shm/ (default /dev, or ${ENV['dev_root']})")
    parser.add_option("amdgpu-topology-root", stages=stages,
                      help=f"root of the sysfs tree with class/kfd (default /, or ${ENV['topology_root']})")
    parser.add_option("amdgpu-copy-engine", stages=("dump", "restore"),
                      help="how BO contents are copied: plain (host-visible buffers), sdma, auto")
    parser.add_flag("amdgpu-serial-bo-restore", stages=("restore",),
                    help="copy BO contents in the restorer's thread instead of one worker per GPU")


@dataclass
class AmdgpuConfig:
    kfd_path: str = "/dev/kfd"
    dev_root: str = "/dev"
    topology_root: str = "/"
    copy_engine: str = "auto"
    serial_bo_restore: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_options(cls, options: Any, env: Mapping[str, str] | None = None) -> AmdgpuConfig:
        env = dict(os.environ) if env is None else dict(env)
        values: dict[str, Any] = {}
        for attr, var in ENV.items():
            opt = options.get(f"amdgpu_{attr}") if options is not None else None
            if opt is None:
                opt = env.get(var)
            if opt is not None:
                values[attr] = str(opt)
        cfg = cls(**values, env=env)
        cfg.serial_bo_restore = bool(options.get("amdgpu_serial_bo_restore", False)) if options is not None else False
        if cfg.copy_engine not in ENGINES:
            raise UsageError(f"--amdgpu-copy-engine {cfg.copy_engine}: expected one of {', '.join(ENGINES)}")
        return cfg

    def render_path(self, minor: int) -> str:
        return os.path.join(self.dev_root, "dri", f"renderD{minor}")

    @property
    def shm_dir(self) -> Path:
        return Path(self.dev_root) / "shm"

    def identities(self) -> tuple[tuple[int, int] | None, dict[tuple[int, int], int]]:
        """(st_dev, st_ino) of the KFD device and of every render node → its minor (stat, following links)."""
        kfd = None
        try:
            st = os.stat(self.kfd_path)
            kfd = (st.st_dev, st.st_ino)
        except OSError:
            pass
        render: dict[tuple[int, int], int] = {}
        dri = Path(self.dev_root) / "dri"
        try:
            names = [p for p in dri.iterdir() if p.name.startswith("renderD") and p.name[7:].isdigit()]
        except OSError:
            names = []
        for p in names:
            try:
                st = os.stat(p)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISREG(st.st_mode):
                render[(st.st_dev, st.st_ino)] = int(p.name[7:])
        return kfd, render


def maps_dev(dev: str | int) -> int:
    """A device number: st_dev as is, or /proc/PID/maps' ``major:minor`` in hex."""
    if isinstance(dev, int):
        return dev
    major, _, minor = dev.partition(":")
    return os.makedev(int(major, 16), int(minor or "0", 16))
