"""BO contents: per-GPU pages files, written at dump and copied back by one worker per GPU at restore.

Offsets are per GPU file and Python ints (64-bit and beyond): CRIU's parallel restore let offsets run on across
GPUs (so the second GPU's seeks land past its file) and kept them in an ``int`` (PyTorch crashed above 2 GiB).

At restore every (task, GPU) job goes to the worker of its local GPU: a single-thread pool from
``ctx.executor``, so GPUs copy in parallel with each other and with the rest of the restore (other VMAs, pages,
descriptors, other tasks), each worker with its own pages-file handle. :meth:`BoRestorer.join` waits for every job
and raises if any failed: it runs before RESUME, so a failed copy fails the restore (CRIU only logs it).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from criu_core.errors import CriuError

from criu_amdgpu.engines import CopyEngine
from criu_amdgpu.images import HEADER, PagesFile, pages_image_name
from criu_amdgpu.kfd import BoBucket

__all__ = ["BoCopy", "BoRestoreFailed", "BoRestorer", "GpuJob", "dump_contents", "plan_jobs", "run_job"]


class BoRestoreFailed(CriuError):
    """Copying BO contents back failed; the task's GPU queues were not resumed."""


@dataclass(frozen=True)
class BoCopy:
    """One BO's share of a pages file: ``offset`` into the content (after the 8-byte header).

    ``fd`` reaches the BO: its dmabuf (``fd_offset`` 0) or, where the kernel handed out none, a render-node file at
    the BO's mmap offset (``fd_offset``); -1 when there is neither.
    """

    addr: int
    size: int
    offset: int
    fd: int = -1
    fd_offset: int = 0


@dataclass
class GpuJob:
    """The BOs of one task on one GPU: ``gpu_id`` names the file (user id), ``worker`` the local GPU."""

    file_id: int
    gpu_id: int
    path: Path
    bos: list[BoCopy] = field(default_factory=list)
    worker: int = 0

    @property
    def total(self) -> int:
        return sum(b.size for b in self.bos)


DeviceFile = Callable[[BoBucket], "tuple[int, int] | None"]


def plan_jobs(file_id: int, images_dir: Path, bos: Iterable[BoBucket],
              user_to_local: dict[int, int] | None = None, device_file: DeviceFile | None = None) -> list[GpuJob]:
    """Group the VRAM/GTT BOs by GPU in bucket order; each GPU's offsets start at 0 in its own file.

    A BO without a dmabuf is reached through ``device_file(bo)``: (fd, offset) of a render-node file, or None.
    """
    jobs: dict[int, GpuJob] = {}
    for b in bos:
        if not b.has_content:
            continue
        job = jobs.get(b.gpu_id)
        if job is None:
            worker = (user_to_local or {}).get(b.gpu_id, b.gpu_id)
            job = jobs[b.gpu_id] = GpuJob(file_id, b.gpu_id, Path(images_dir) / pages_image_name(file_id, b.gpu_id),
                                          worker=worker)
        fd, fd_offset = (-1, 0) if b.dmabuf_fd in (-1, 0xFFFFFFFF) else (b.dmabuf_fd, 0)
        if fd < 0 and device_file is not None:
            fd, fd_offset = device_file(b) or (-1, 0)
        job.bos.append(BoCopy(b.addr, b.size, job.total, fd, fd_offset))
    return list(jobs.values())


def _block_sigchld() -> None:
    # The restorer reaps and waits on its seeds; pool threads must not take their SIGCHLD. The serial mode runs
    # jobs in the restorer's own thread, whose mask every later child would inherit: leave that one alone.
    if threading.current_thread() is not threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})


def run_job(job: GpuJob, engine: CopyEngine) -> None:
    """Copy one job's BOs from its pages file into the BOs; closes the BOs' fds whatever happens."""
    _block_sigchld()
    try:
        fd = PagesFile(job.path).open_checked(job.total)
        try:
            for bo in job.bos:
                if bo.fd < 0:
                    raise BoRestoreFailed(f"BO {bo.addr:#x} on GPU {job.gpu_id:04x} has neither a dmabuf nor a "
                                          "render node to restore into")
                try:
                    engine.write_bo(fd, HEADER.size + bo.offset, bo.size, bo.fd, bo.fd_offset, job.worker)
                except CriuError as exc:
                    raise BoRestoreFailed(f"{job.path.name}: BO {bo.addr:#x} ({bo.size} bytes at offset {bo.offset})"
                                          f": {exc}") from None
                except OSError as exc:
                    raise BoRestoreFailed(f"{job.path.name}: BO {bo.addr:#x} ({bo.size} bytes at offset {bo.offset})"
                                          f": {exc.strerror}") from None
        finally:
            os.close(fd)
    finally:
        for bo in job.bos:
            if bo.fd >= 0:
                os.close(bo.fd)


class BoRestorer:
    """Runs jobs on one worker per local GPU (or inline with ``serial``); :meth:`join` before RESUME."""

    def __init__(self, engine: CopyEngine, executor: Callable[[int, str], ThreadPoolExecutor],
                 serial: bool = False) -> None:
        self.engine = engine
        self._executor = executor
        self.serial = serial
        self._workers: dict[int, ThreadPoolExecutor] = {}
        self._futures: list[tuple[GpuJob, Future[None]]] = []

    def submit(self, job: GpuJob) -> None:
        if self.serial:
            run_job(job, self.engine)
            return
        pool = self._workers.get(job.worker)
        if pool is None:
            pool = self._workers[job.worker] = self._executor(1, f"amdgpu-bo-{job.worker:04x}")
        self._futures.append((job, pool.submit(run_job, job, self.engine)))

    @property
    def pending(self) -> int:
        return sum(1 for _, f in self._futures if not f.done())

    def join(self) -> None:
        """Wait for every job; raise the first failure (after all stopped, so nothing writes on)."""
        futures, self._futures = self._futures, []
        wait([f for _, f in futures])
        for job, fut in futures:
            exc = fut.exception()
            if exc is not None:
                if isinstance(exc, CriuError):
                    raise exc
                raise BoRestoreFailed(f"{job.path.name}: {exc}") from exc


def dump_contents(file_id: int, images_dir: Path, bos: list[BoBucket], engine: CopyEngine,
                  executor: Callable[[int, str], ThreadPoolExecutor] | None = None,
                  device_file: DeviceFile | None = None, user_to_local: dict[int, int] | None = None) -> list[GpuJob]:
    """Write each GPU's VRAM/GTT BOs into its pages file (one thread per GPU when ``executor`` is given).

    The BOs' fds stay the caller's. A BO neither a dmabuf nor ``device_file`` reaches fails the dump (its contents
    would be lost).
    """
    jobs = plan_jobs(file_id, images_dir, bos, user_to_local, device_file)
    for job in jobs:
        for bo in job.bos:
            if bo.fd < 0:
                raise CriuError(f"amdgpu: BO {bo.addr:#x} on GPU {job.gpu_id:04x}: the kernel handed out no dmabuf "
                                      "and the task has no render node of that GPU open: its contents cannot be "
                                      "read")

    def one(job: GpuJob) -> None:
        fd = PagesFile(job.path).create(job.total)
        try:
            for bo in job.bos:
                engine.read_bo(bo.fd, bo.fd_offset, bo.size, fd, HEADER.size + bo.offset, job.worker)
        finally:
            os.close(fd)

    if executor is None or len(jobs) <= 1:
        for job in jobs:
            one(job)
    else:
        pool = executor(len(jobs), "amdgpu-dump")
        futures = [pool.submit(one, job) for job in jobs]
        wait(futures)
        for f in futures:
            f.result()
    return jobs
