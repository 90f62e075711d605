"""Regenerate ``criu_core/images/pb/*_pb2.py`` from ``criu_core/images/proto/*.proto``.

Run ``python -m criu_core.images.regen`` after editing a .proto file and commit the result. The output is
deterministic: the same protos and the same grpcio-tools give byte-identical files (a test checks this), and
no absolute path leaks into them because protoc only sees paths relative to the proto directory.

protoc writes ``import fown_pb2 as fown__pb2`` for a dependency; that only works with the output directory on
``sys.path``, so those lines are rewritten into package-relative imports.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

__all__ = ["PB_DIR", "PROTO_DIR", "generate", "main", "proto_files"]

PROTO_DIR = Path(__file__).resolve().parent / "proto"
PB_DIR = Path(__file__).resolve().parent / "pb"

_IMPORT_RE = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)

_PB_INIT = '''"""Generated protobuf modules, one per file in ../proto (``python -m criu_core.images.regen``).

Do not edit: regenerate. Import submodules explicitly (``from criu_core.images.pb import core_pb2``) or via
``criu_core.images.messages``. Importing this package loads no generated module; in the ``criu-py`` command it
keeps protobuf's pure-Python runtime off the import path (see criu_core.images.pbruntime) before any is loaded.
"""

from criu_core.images.pbruntime import defer_if_wanted

defer_if_wanted()
'''


def proto_files(proto_dir: Path = PROTO_DIR) -> list[str]:
    """Names of the .proto files to compile, sorted so that output order never depends on the filesystem."""
    return sorted(p.name for p in proto_dir.glob("*.proto"))


def generate(out_dir: Path, proto_dir: Path = PROTO_DIR) -> list[Path]:
    """Compile every proto in ``proto_dir`` into ``out_dir``; returns the files written (sorted).

    Raises RuntimeError if protoc fails.
    """
    from grpc_tools import protoc  # build-time only dependency (grpcio-tools)

    out_dir.mkdir(parents=True, exist_ok=True)
    files = proto_files(proto_dir)
    args = ["protoc", f"--proto_path={proto_dir}", f"--python_out={out_dir}", *files]
    # protoc resolves names against the current directory: run it from proto_dir so that paths stay relative.
    cwd = os.getcwd()
    os.chdir(proto_dir)
    try:
        rc = protoc.main(args)
    finally:
        os.chdir(cwd)
    if rc != 0:
        raise RuntimeError(f"protoc failed with status {rc}")
    written = []
    for name in files:
        path = out_dir / (name[: -len(".proto")] + "_pb2.py")
        text = path.read_text()
        text = _IMPORT_RE.sub(r"from . import \1 as \2", text)
        path.write_text(text)
        written.append(path)
    init = out_dir / "__init__.py"
    init.write_text(_PB_INIT)
    written.append(init)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m criu_core.images.regen", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PB_DIR, help="output directory (default: %(default)s)")
    ns = parser.parse_args(argv)
    for path in generate(ns.out):
        print(path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
