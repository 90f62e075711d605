"""Where the restore forks each task so that it ends in its dumped session (restore_sessions.plan_sessions), decided
before anything is created: the shapes CRIU's prepare_pstree_ids accepts, and the ones it refuses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from criu_core.errors import UnsupportedResource
from criu_core.restore_plan import TaskState
from criu_core.restore_sessions import plan_sessions


def _states(*tasks: tuple[int, int, int, int], subreapers: tuple[int, ...] = ()) -> dict[int, TaskState]:
    """(pid, ppid, pgid, sid) in pstree order; every task alive, with its own fd table, fs and mm."""
    out = {}
    for pid, ppid, pgid, sid in tasks:
        plan = SimpleNamespace(
            pid=pid, ppid=ppid, pgid=pgid, sid=sid, dead=False,
            core=SimpleNamespace(tc=SimpleNamespace(child_subreaper=pid in subreapers)),
            ids=SimpleNamespace(files_id=pid, fs_id=pid, vm_id=pid, sighand_id=pid), parent_pages=(),
        )  # fmt: skip
        out[pid] = TaskState(plan, {})  # type: ignore[arg-type]
    return out


def _plan(states: dict[int, TaskState], shell_job: bool = False) -> None:
    plan_sessions(SimpleNamespace(options=SimpleNamespace(shell_job=shell_job)), states)  # type: ignore[arg-type]


def test_born_sid_two_generations() -> None:
    """R leads session 10; G and P set up their own sessions after forking: C, in 10, marks both as born there."""
    st = _states((10, 0, 10, 10), (11, 10, 11, 11), (12, 11, 12, 12), (13, 12, 10, 10))
    _plan(st)
    assert (st[11].born, st[12].born, st[13].born) == (10, 10, None)
    assert not any(s.forker for s in st.values())


def test_born_in_two_sessions_refused() -> None:
    """B would have to be born both in session 10 (for C1) and in session 11 (for C2): CRIU refuses it too."""
    st = _states((10, 0, 10, 10), (11, 10, 11, 11), (12, 11, 12, 12), (13, 12, 10, 10), (14, 12, 11, 11))
    with pytest.raises(UnsupportedResource, match=r"Can't figure out which sid \(10 or 11\) the process 12"):
        _plan(st)


def test_live_leader_helper_planned() -> None:
    """C and D, children of the subreaper root, are in session 11 led by their sibling L: L's helper forks them."""
    st = _states((10, 0, 10, 10), (11, 10, 11, 11), (12, 10, 11, 11), (13, 10, 13, 11), subreapers=(10,))
    _plan(st)
    assert (st[12].forker, st[13].forker, st[11].forker) == (11, 11, 0)


@pytest.mark.parametrize(
    ("tasks", "subreapers", "why"),
    [
        # the parent is not a child subreaper: the helper's orphan would not go to it
        (((10, 0, 10, 10), (11, 10, 11, 11), (12, 10, 11, 11)), (), "10 is not a child subreaper"),
        # a subreaper between the leader and the parent would adopt it instead
        (((10, 0, 10, 10), (11, 10, 10, 10), (12, 11, 12, 12), (13, 10, 12, 12)), (10, 11), "11, a child subreaper"),
        # a task in session 10 below a non-leader of session 11: nobody on the way can have forked it in 10
        (((10, 0, 10, 10), (11, 10, 11, 11), (12, 11, 11, 11), (13, 12, 10, 10)), (), "Can't find a session leader"),
    ],
)
def test_impossible_sessions_refused(tasks: tuple, subreapers: tuple[int, ...], why: str) -> None:
    with pytest.raises(UnsupportedResource, match=why):
        _plan(_states(*tasks, subreapers=subreapers))


def _vm_plan(
    *tasks: tuple[int, int, int], brk: dict[int, int] | None = None, names: dict[int, dict[int, str]] | None = None
) -> SimpleNamespace:
    """A plan of (pid, ppid, vm_id) tasks whose mm images are equal unless ``brk`` gives one another value, and
    whose criu-core-PID.img VMA names are equal (none) unless ``names`` gives a task some."""
    from criu_core.images.messages import new as new_message

    out = []
    for pid, ppid, vm in tasks:
        mm = new_message("mm.mm_entry")
        for name in (
            "mm_start_code",
            "mm_end_code",
            "mm_start_data",
            "mm_end_data",
            "mm_start_stack",
            "mm_start_brk",
            "mm_arg_start",
            "mm_arg_end",
            "mm_env_start",
            "mm_env_end",
            "exe_file_id",
        ):
            setattr(mm, name, 0)
        mm.mm_brk = (brk or {}).get(pid, 0x1000)
        out.append(
            SimpleNamespace(
                pid=pid,
                ppid=ppid,
                dead=False,
                ids=SimpleNamespace(vm_id=vm),
                mm=mm,
                pages=(),
                vma_names=(names or {}).get(pid, {}),
                parent_pages=(),
            )
        )
    return SimpleNamespace(tasks=out, images_dir=Path("/images"))


def test_vm_sharing_shapes() -> None:
    """A chain of CLONE_VM children is made from parent to child, siblings sharing an mm their parent lacks by
    the first of them (CLONE_PARENT); any other sharer is refused naming the tasks, as are images of one mm
    that disagree."""
    from criu_core.errors import ImageFormatError
    from criu_core.restore import _check_vm_sharing

    makers = _check_vm_sharing(_vm_plan((10, 0, 1), (11, 10, 1), (12, 11, 1), (13, 10, 2)))  # type: ignore[arg-type]
    assert makers == {11: 10, 12: 11}
    # siblings: the first one to have the mm makes the others (CLONE_PARENT)
    assert _check_vm_sharing(_vm_plan((10, 0, 1), (11, 10, 2), (12, 10, 2), (13, 10, 2))) == {12: 11, 13: 11}  # type: ignore[arg-type]
    # 13 shares 11's mm, but neither its parent 12 nor a sibling has it
    with pytest.raises(UnsupportedResource, match="task 13 shares its address space with task 11.*its parent 12"):
        _check_vm_sharing(_vm_plan((10, 0, 1), (11, 10, 2), (12, 10, 3), (13, 12, 2)))  # type: ignore[arg-type]
    with pytest.raises(ImageFormatError, match="mm-11.img"):
        _check_vm_sharing(_vm_plan((10, 0, 1), (11, 10, 1), brk={11: 0x2000}))  # type: ignore[arg-type]
    with pytest.raises(ImageFormatError, match="mm-11.img.*criu-core image differs"):
        _check_vm_sharing(_vm_plan((10, 0, 1), (11, 10, 1), names={10: {0x1000: "a"}}))  # type: ignore[arg-type]


def test_pages_left_to_the_parent_refuse_a_leader_helper() -> None:
    """A task made by the session leader's helper gets the leader's memory, not its parent's: pages it left to
    its parent (--dedup-cow-pages) cannot come from there, so the plan refuses before anything exists."""
    st = _states((10, 0, 10, 10), (11, 10, 11, 11), (12, 10, 11, 11), subreapers=(10,))
    st[12].plan.parent_pages = ((0x10000, 1),)
    with pytest.raises(UnsupportedResource, match="leaves pages to its parent 10"):
        _plan(st)
