"""Dump mechanics, one module per resource; :mod:`criu_core.dump` orchestrates them and talks to plugins.

* :mod:`.ids` -- object ids (files, vm/files/fs/sighand, namespaces) shared by one dump
* :mod:`.thread` -- per-thread state: registers, FPU, signals, creds, rseq (core-TID.img)
* :mod:`.task` -- per-process state: sigactions, timers, rlimits, mm fields (the injected queries)
* :mod:`.mm` -- VMAs from smaps into vma_entry messages
* :mod:`.pages` -- page selection (PAGEMAP_SCAN or pagemap) and the copy into pages-N.img
* :mod:`.files` -- descriptors (pidfd_getfd copies, fdinfo) and regular-file entries
* :mod:`.filetable` -- files.img of a dump and its side images (ghosts, memfd, shmem, pipes, unix peers)
* :mod:`.messages` -- builders of core, zombie, seccomp, timens, inventory and stats messages
"""

from __future__ import annotations

__all__: list[str] = []
