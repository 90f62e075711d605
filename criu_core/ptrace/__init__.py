"""The tracer core: freeze a tree (:func:`seize_tree`), drive one stopped thread (:class:`RemoteTask`: registers,
memory, injected syscalls), create restore seeds (:func:`make_seed`, :func:`fork_child_in`,
:func:`clone_thread_in`). All ptrace calls for a tracee must come from the thread that attached it."""

from __future__ import annotations

from criu_core.ptrace.events import Stop, decode, wait_tid
from criu_core.ptrace.seed import SEED_OPTIONS, clone_thread_in, fork_child_in, inject_clone3, make_seed
from criu_core.ptrace.seize import SEIZE_OPTIONS, FrozenTree, seize_tree
from criu_core.ptrace.task import PAGE_SIZE, RemoteTask

__all__ = [
    "PAGE_SIZE",
    "SEED_OPTIONS",
    "SEIZE_OPTIONS",
    "FrozenTree",
    "RemoteTask",
    "Stop",
    "clone_thread_in",
    "decode",
    "fork_child_in",
    "inject_clone3",
    "make_seed",
    "seize_tree",
    "wait_tid",
]
