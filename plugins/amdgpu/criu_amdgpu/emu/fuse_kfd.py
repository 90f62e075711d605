"""An emulated ``/dev/kfd`` served through FUSE (mfusepy over libfuse3): real processes issue real ioctls on it.

The mount holds one regular file, ``kfd``. FUSE calls ioctls on a regular file in *restricted* mode (reference
§7.2): the kernel copies ``_IOC_SIZE(cmd)`` bytes in and out and refuses to follow embedded pointers, so the
server follows them itself with ``process_vm_readv/writev`` on the calling thread (the request carries its tid;
it is blocked in the ioctl, so its memory is stable). Each open creates (or joins) the KFD process of the opener's
thread group; the emulated kernel's rules apply, the ptrace-parent-thread rule included (read from /proc).

It also serves ``dri/renderD<minor>`` for each GPU: reads and writes at a VRAM/GTT BO's mmap offset (the DRM fake
offset ALLOC_MEMORY_OF_GPU and RESTORE hand out) reach that BO's memory, zeros elsewhere. The files are not
``direct_io``, so the kernel serves them through the page cache and a process can ``mmap`` a BO the way a ROCm
runtime maps it through its render node (``MAP_SHARED`` writes reach the emulator on writeback or ``msync``).
The rule DRM applies to mmap (only a file that holds a handle to the BO) is not enforced: FUSE writeback may
arrive with another opener's file handle.

Limits: a server cannot install descriptors in its caller, so CHECKPOINT and RESTORE report no dmabuf fds
(``KFD_INVALID_FD``): BO contents move through the render node instead. Doorbell/MMIO offsets of ``/dev/kfd``
(bits 62-63 set) do not fit a file offset, so those mappings are not emulated.

Run: ``python -m criu_amdgpu.emu.fuse_kfd MOUNTPOINT --gpu 0x70b3:128 [--gpu ...] [--store DIR]`` (foreground;
unmount with ``fusermount3 -u MOUNTPOINT``).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import stat
import threading
from typing import Any

import mfusepy

from criu_amdgpu import abi
from criu_amdgpu.emu.model import FakeDrmFile, FakeGpu, FakeKfd, FakeKfdFile
from criu_amdgpu.kfd import ProcessMemory

__all__ = ["KfdFuse", "main", "start_time", "tgid_of"]

DEVICE = "/kfd"
DRI = "/dri"
RENDER_SIZE = 1 << 62  # the largest offset a render node serves (DRM fake offsets are far below)


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a process from an earlier one with the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def tgid_of(tid: int) -> int:
    """The thread group of thread ``tid`` (FUSE reports the calling thread)."""
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return tid


class KfdFuse(mfusepy.Operations):
    """FUSE operations serving :class:`FakeKfd` at ``/kfd``."""

    use_ns = True

    def __init__(self, kfd: FakeKfd, log_path: str | None = None) -> None:
        self.kfd = kfd
        self.log_path = log_path
        self.files: dict[int, FakeKfdFile] = {}
        self.render: dict[int, FakeDrmFile] = {}  # fh -> an open render node
        self.minors = {f"{DRI}/renderD{g.render_minor}": g.gpu_id for g in kfd.gpus}
        self._next = 1
        self._lock = threading.Lock()
        self.log: list[tuple[int, int, int]] = []  # (caller tid, cmd, errno or 0)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        now = 0
        if path in ("/", DRI):
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_atime": now, "st_mtime": now, "st_ctime": now}
        if path == DEVICE or path in self.minors:
            size = RENDER_SIZE if path in self.minors else 0
            return {"st_mode": stat.S_IFREG | 0o666, "st_nlink": 1, "st_size": size, "st_atime": now, "st_mtime": now,
                    "st_ctime": now}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        if path == DRI:
            return [".", "..", *(p.rsplit("/", 1)[1] for p in self.minors)]
        return [".", "..", DEVICE[1:], DRI[1:]]

    def open(self, path: str, flags: int) -> int:
        if path != DEVICE and path not in self.minors:
            raise mfusepy.FuseOSError(errno.ENOENT)
        _, _, tid = mfusepy.fuse_get_context()
        with self._lock:
            fh = self._next
            self._next += 1
            tgid = tgid_of(tid)
            if path in self.minors:
                self.render[fh] = self.kfd.open_render(tgid, self.minors[path])
                return fh
            self.files[fh] = self.kfd.open(tgid, start_time(tgid))
        return fh

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            self.files.pop(fh, None)
            drm = self.render.pop(fh, None)
        if drm is not None:
            self.kfd.close_render(drm)
        return 0

    def _gpu_of(self, path: str) -> int:
        gpu = self.minors.get(path)
        if gpu is None:
            raise mfusepy.FuseOSError(errno.EINVAL if path == DEVICE else errno.ENOENT)
        return gpu

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self.kfd.read_device(self._gpu_of(path), offset, size)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        try:
            return self.kfd.write_device(self._gpu_of(path), offset, bytes(data))
        except OSError as exc:
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return 0  # O_TRUNC on a device means nothing

    def ioctl(self, path: str, cmd: int, arg: Any, fh: int, flags: int, data: Any) -> int:
        cmd &= 0xFFFFFFFF
        file = self.files.get(fh)
        drm = self.render.get(fh)
        if file is None and drm is None:
            raise mfusepy.FuseOSError(errno.EBADF)
        _, _, tid = mfusepy.fuse_get_context()
        size = abi.ioc_size(cmd)
        addr = ctypes.cast(data, ctypes.c_void_p).value if data else None
        buf = bytearray(ctypes.string_at(addr, size)) if addr and size else bytearray(size)
        if drm is not None:
            try:
                self.kfd.drm_ioctl(drm, cmd, buf, ProcessMemory(tid))
            except OSError as exc:
                raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None
            if addr and size and abi.ioc_dir(cmd) & abi.IOC_READ:
                ctypes.memmove(addr, bytes(buf), size)
            return 0
        op = int.from_bytes(buf[48:52], "little") if cmd == abi.AMDKFD_IOC_CRIU_OP and size >= 52 else -1
        try:
            self.kfd.ioctl(file, cmd, buf, ProcessMemory(tid), caller=tgid_of(tid), caller_tid=tid,
                           install_fd=lambda memfd: abi.KFD_INVALID_FD)
        except OSError as exc:
            self._record(tid, file, cmd, op, buf, exc.errno or errno.EIO)
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None
        self._record(tid, file, cmd, op, buf, 0)
        if addr and size and abi.ioc_dir(cmd) & abi.IOC_READ:
            ctypes.memmove(addr, bytes(buf), size)
        return 0


    def _record(self, tid: int, file: FakeKfdFile, cmd: int, op: int, buf: bytearray, err: int) -> None:
        """One line per ioctl in the log file: caller tid and tgid, KFD process, command, CRIU op, pid arg, errno."""
        self.log.append((tid, cmd, err))
        if self.log_path:
            pid_arg = int.from_bytes(buf[44:48], "little") if op >= 0 else 0
            with open(self.log_path, "a") as f:
                f.write(f"{tid} {tgid_of(tid)} {file.owner} {cmd:#x} {op} {pid_arg} {err}\n")


def _gpu(text: str) -> FakeGpu:
    gpu_id, _, minor = text.partition(":")
    return FakeGpu(int(gpu_id, 0), int(minor or "128"))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="serve an emulated /dev/kfd at MOUNTPOINT/kfd")
    ap.add_argument("mountpoint")
    ap.add_argument("--gpu", action="append", type=_gpu, default=[], help="GPU_ID[:RENDER_MINOR], repeatable")
    ap.add_argument("--version", default="1.17", help="what GET_VERSION reports")
    ap.add_argument("--log", help="append one line per ioctl to this file")
    ap.add_argument("--store", help="keep BO contents as files <STORE>/<pid>/<addr hex>.bo")
    ap.add_argument("--no-list-handles", action="store_true",
                    help="render nodes refuse AMDGPU_GEM_LIST_HANDLES (EINVAL), as kernels before it do")
    a = ap.parse_args(argv)
    major, minor = (int(x) for x in a.version.split("."))
    store = os.path.abspath(a.store) if a.store else None
    kfd = FakeKfd(a.gpu or [FakeGpu(0x70B3, 128)], version=(major, minor), store_dir=store,
                  list_handles=not a.no_list_handles)
    os.makedirs(a.mountpoint, exist_ok=True)
    log = os.path.abspath(a.log) if a.log else None  # libfuse may chdir("/") once mounted
    mfusepy.FUSE(KfdFuse(kfd, log), a.mountpoint, foreground=True, allow_other=True, nothreads=False)


if __name__ == "__main__":
    main()
