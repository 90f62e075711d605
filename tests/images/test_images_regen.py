"""The committed generated modules are exactly what `python -m criu_core.images.regen` produces."""

from __future__ import annotations

import subprocess
import sys

import pytest

from criu_core.images import regen


def test_regen_is_identical(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the test extra) is needed to regenerate")
    written = regen.generate(tmp_path)
    committed = sorted(regen.PB_DIR.glob("*.py"))
    assert [p.name for p in written] == [p.name for p in committed]
    for new in written:
        old = regen.PB_DIR / new.name
        assert new.read_bytes() == old.read_bytes(), f"{new.name} differs: run python -m criu_core.images.regen"
    assert not any(str(tmp_path) in p.read_text() or "/work/" in p.read_text() for p in written)


def test_one_module_per_proto():
    protos = {p.name[: -len(".proto")] for p in regen.PROTO_DIR.glob("*.proto")}
    mods = {p.name[: -len("_pb2.py")] for p in regen.PB_DIR.glob("*_pb2.py")}
    assert protos == mods


def test_package_import_is_lazy():
    # (how long it takes is for bench/startup.py to say; a test only pins what is imported)
    code = (
        "import sys; import criu_core.images as i; from criu_core.images import magic, framing, imagedir; "
        "assert 'google.protobuf' not in sys.modules, 'protobuf imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
