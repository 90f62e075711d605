"""Shared data for the image-layer tests: the golden CRIU 4.2 dumps and Debian's crit.

A test that takes ``golden_image`` runs once per non-raw image of every golden dump; ``golden_images`` is the
whole list; ``crit`` is the path of Debian's crit (the test is skipped, saying why, when it is missing).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CRIT = "/usr/bin/crit"
SYS_PYTHON = "/usr/bin/python3"


def _golden_root() -> Path:
    env = os.environ.get("CRIU_GOLDEN")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:  # the repository root or a worktree beside shared/
        for cand in (parent / "shared/fixtures/criu-4.2", parent.parent / "shared/fixtures/criu-4.2"):
            if cand.is_dir():
                return cand
    return Path("/work/shared/fixtures/criu-4.2")


GOLDEN = _golden_root()


def _golden_images() -> list[Path]:
    if not GOLDEN.is_dir():
        return []
    return sorted(
        p for p in GOLDEN.glob("*/*") if p.is_file() and p.suffix != ".md" and not p.name.startswith("pages-")
    )


GOLDEN_IMAGES = _golden_images()


def _one_per_type() -> dict[str, Path]:
    """One golden file per image type (the first in sort order), keyed by the type's name."""
    from criu_core.images import magic

    out: dict[str, Path] = {}
    for p in GOLDEN_IMAGES:
        found = magic.type_for_filename(p.name)
        if found is not None:
            out.setdefault(found[0].name, p)
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "golden_image" in metafunc.fixturenames:
        metafunc.parametrize("golden_image", GOLDEN_IMAGES, ids=[f"{p.parent.name}/{p.name}" for p in GOLDEN_IMAGES])
    if "typed_image" in metafunc.fixturenames:
        per_type = _one_per_type()
        metafunc.parametrize("typed_image", list(per_type.values()), ids=list(per_type))


@pytest.fixture
def golden_images() -> list[Path]:
    if not GOLDEN_IMAGES:
        pytest.skip(f"golden CRIU 4.2 dumps not found under {GOLDEN}")
    return GOLDEN_IMAGES


@pytest.fixture
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"golden CRIU 4.2 dumps not found under {GOLDEN}")
    return GOLDEN


@pytest.fixture
def crit() -> str:
    if not os.path.exists(CRIT) or shutil.which(SYS_PYTHON) is None:
        pytest.skip(f"{CRIT} is not installed (Debian package criu; the Makefile installs it)")
    return CRIT
