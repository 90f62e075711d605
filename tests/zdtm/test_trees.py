"""Issue 4: threads and process trees (same TIDs and PIDs, parents, per-thread state)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _tids(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def _tree(pid: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = sorted(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        out[p] = kids
        todo.extend(kids)
    return out


@pytest.mark.parametrize("n", [2, 16, 200])
def test_threads(zdtm, n: int) -> None:
    t = zdtm.start("threads", str(n))
    tids = _tids(t.pid)
    assert len(tids) == n
    zdtm.cycle(t)
    assert _tids(t.pid) == tids, "the threads did not come back with their TIDs"
    t.check()


@pytest.mark.parametrize("n", [3, 100])
def test_tree(zdtm, n: int) -> None:
    t = zdtm.start("tree", str(n))
    tree = _tree(t.pid)
    assert sum(len(k) for k in tree.values()) == n - 1
    zdtm.cycle(t)
    assert _tree(t.pid) == tree, "the tree did not come back with its PIDs and parents"
    t.check()
