"""Restore side of ``[anon:NAME]``: the injected prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, start, len, name) issued
once per named VMA after it is mapped and filled, through the RemoteTask.syscall seam; a kernel without
CONFIG_ANON_VMA_NAME (EINVAL) gives one warning and the restore goes on; other errors fail it. The names come
from the plan (criu-core-PID.img), never from the vma_entry, which stays CRIU's."""

from __future__ import annotations

import errno
import logging
from types import SimpleNamespace

import pytest

from criu_core.builtin import mem_restore
from criu_core.errors import CriuError
from criu_core.images.messages import new
from criu_core.images.vma import VMA_ANON_PRIVATE, VMA_ANON_SHARED, VMA_AREA_REGULAR
from criu_core.ptrace.restore_scratch import Scratch
from criu_core.resources import VmaImage
from criu_core.restore_plan import TaskState
from criu_core.stash import Stash

PR_SET_VMA = 0x53564D41
SCRATCH = 0x10000


class RecordingRemote:
    """Records injected syscalls; memory writes land in a dict so the name's bytes can be read back."""

    def __init__(self, prctl_ret: int = 0) -> None:
        self.calls: list[tuple] = []
        self.mem: dict[int, bytes] = {}
        self.prctl_ret = prctl_ret

    def write_mem(self, addr: int, data: bytes) -> None:
        self.mem[addr] = bytes(data)

    def syscall(self, name: str, *args: int, check: bool = True) -> int:
        call = (name, *args)
        if name == "prctl" and args[0] == PR_SET_VMA:
            call = (name, *args[:4], self.mem[args[4]])  # the string the pointer names, as the kernel reads it
            self.calls.append(call)
            return self.prctl_ret
        self.calls.append(call)
        return 0


def _state(remote: RecordingRemote, names: list[str | None], shared: tuple[int, ...] = ()) -> TaskState:
    """VMAs named ``names`` (None: unnamed); those at the indexes in ``shared`` are MAP_SHARED anonymous."""
    vmas = []
    vma_names = {}
    for i, name in enumerate(names):
        e = new(
            "vma.vma_entry",
            start=0x7F0000000000 + i * 0x10000,
            end=0x7F0000000000 + i * 0x10000 + 0x3000,
            pgoff=0,
            shmid=0,
            prot=3,
            flags=0x21 if i in shared else 0x22,
            status=VMA_AREA_REGULAR | (VMA_ANON_SHARED if i in shared else VMA_ANON_PRIVATE),
            fd=-1,
        )
        if name is not None:
            vma_names[e.start] = name
        vmas.append(VmaImage(4242, i, e))
    st = TaskState(plan=SimpleNamespace(pid=4242, vmas=tuple(vmas), vma_names=vma_names), files={})
    st.remote = remote
    st.scratch = Scratch(remote, SCRATCH)
    return st


def _run(remote: RecordingRemote, names: list[str | None], shared: tuple[int, ...] = ()) -> None:
    ctx = SimpleNamespace(stash=Stash(), log=logging.getLogger("criu"))
    host = SimpleNamespace(vma_pages_restore=lambda ctx, vma, remote: None)
    mem_restore.finish_vmas(ctx, _state(remote, names, shared), host)


def test_prctl_names_each_named_vma() -> None:
    remote = RecordingRemote()
    _run(remote, ["foo", None, "my arena 2"])
    assert [c for c in remote.calls if c[0] == "prctl"] == [
        ("prctl", PR_SET_VMA, 0, 0x7F0000000000, 0x3000, b"foo\0"),
        ("prctl", PR_SET_VMA, 0, 0x7F0000020000, 0x3000, b"my arena 2\0"),
    ]


def test_kernel_without_anon_vma_name_warns_once_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    remote = RecordingRemote(prctl_ret=-errno.EINVAL)
    with caplog.at_level(logging.WARNING, logger="criu"):
        _run(remote, ["foo", "bar", "baz"])
    assert len([c for c in remote.calls if c[0] == "prctl"]) == 1  # not asked again once refused
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CONFIG_ANON_VMA_NAME" in warnings[0] and "'foo'" in warnings[0], warnings


def test_other_prctl_errors_fail_the_restore() -> None:
    remote = RecordingRemote(prctl_ret=-errno.ENOMEM)
    with pytest.raises(
        CriuError,
        match=r"cannot name VMA 0x7f0000000000-0x7f0000003000 of task 4242 "
        r"\[anon:foo\]: ENOMEM",
    ):
        _run(remote, ["foo"])


class SharedRefusingRemote(RecordingRemote):
    """A kernel that names private anonymous VMAs but not shared ones (before Linux 6.2)."""

    def syscall(self, name: str, *args: int, check: bool = True) -> int:
        ret = super().syscall(name, *args, check=check)
        if name == "prctl" and args[0] == PR_SET_VMA and args[2] == 0x7F0000000000:
            return -errno.EINVAL
        return ret


def test_einval_for_shared_memory_leaves_only_that_vma_unnamed(caplog: pytest.LogCaptureFixture) -> None:
    remote = SharedRefusingRemote()
    with caplog.at_level(logging.WARNING, logger="criu"):
        _run(remote, ["shm", "foo", "bar"], shared=(0,))
    named = [c[3] for c in remote.calls if c[0] == "prctl"]
    assert named == [0x7F0000000000, 0x7F0000010000, 0x7F0000020000], "the private VMAs are still named"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "shared anonymous" in warnings[0] and "'shm'" in warnings[0], warnings
