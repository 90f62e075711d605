"""Ids shared across one dump: file ids (files.img), task kernel-object ids (ids-PID.img), namespace ids."""

from __future__ import annotations

import os

from criu_core.errors import CriuError
from criu_core.records import dataclass, field
from criu_core.sys.proc import KCMP_FILES, KCMP_FS, KCMP_SIGHAND, KCMP_VM, kcmp

__all__ = ["NS_KINDS", "DumpIds"]

# Namespace kinds in the order CRIU numbers them (pid 1, net 2, ipc 3, uts 4, time 5, mnt 6, user 7, cgroup 8),
# with the ids-PID.img field each goes to.
NS_KINDS: tuple[tuple[str, str], ...] = (
    ("pid", "pid_ns_id"),
    ("net", "net_ns_id"),
    ("ipc", "ipc_ns_id"),
    ("uts", "uts_ns_id"),
    ("time", "time_ns_id"),
    ("mnt", "mnt_ns_id"),
    ("user", "user_ns_id"),
    ("cgroup", "cgroup_ns_id"),
)
_KOBJ = (("vm_id", KCMP_VM), ("files_id", KCMP_FILES), ("fs_id", KCMP_FS), ("sighand_id", KCMP_SIGHAND))


@dataclass
class DumpIds:
    """Allocates ids the way CRIU numbers them: the dumper itself owns kernel-object id 1 (inventory root_ids),
    dumped processes get 2, 3, ... unless kcmp says they share the object; namespaces are numbered by inode in
    :data:`NS_KINDS` order; file ids count from 1 in the order files are met."""

    next_file_id: int = 1
    files: dict[tuple, int] = field(default_factory=dict)
    _kobj: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # kind → [(pid, id)]
    _kobj_next: dict[str, int] = field(default_factory=dict)
    ns: dict[tuple[str, int], int] = field(default_factory=dict)
    next_ns_id: int = 1

    def __post_init__(self) -> None:
        for name, _ in _KOBJ:
            self._kobj[name] = [(os.getpid(), 1)]
            self._kobj_next[name] = 2
        self.ns_ids(os.getpid())

    def file_id(self, key: tuple) -> tuple[int, bool]:
        """(id, new) for a file identity ``key``; ``new`` is True the first time."""
        if key in self.files:
            return self.files[key], False
        fid = self.next_file_id
        self.next_file_id += 1
        self.files[key] = fid
        return fid, True

    def new_file_id(self) -> int:
        fid = self.next_file_id
        self.next_file_id += 1
        return fid

    def kobj_ids(self, pid: int) -> dict[str, int]:
        """vm/files/fs/sighand ids of ``pid``, shared with an earlier process when kcmp says they are equal."""
        out: dict[str, int] = {}
        for name, kind in _KOBJ:
            known = self._kobj[name]
            for other, oid in known:
                if other == pid:
                    out[name] = oid
                    break
                try:
                    if kcmp(pid, other, kind) == 0:
                        out[name] = oid
                        break
                except CriuError:
                    continue
            else:
                out[name] = self._kobj_next[name]
                self._kobj_next[name] += 1
                known.append((pid, out[name]))
        return out

    def ns_ids(self, pid: int) -> dict[str, int]:
        """Namespace ids of ``pid`` (only the kinds this kernel has)."""
        out: dict[str, int] = {}
        for kind, fname in NS_KINDS:
            try:
                ino = os.stat(f"/proc/{pid}/ns/{kind}").st_ino
            except FileNotFoundError:
                continue
            key = (kind, ino)
            if key not in self.ns:
                self.ns[key] = self.next_ns_id
                self.next_ns_id += 1
            out[fname] = self.ns[key]
        return out

    def root_ids(self) -> dict[str, int]:
        """The dumper's own ids (inventory ``root_ids``)."""
        return {**{name: 1 for name, _ in _KOBJ}, **self.ns_ids(os.getpid())}
