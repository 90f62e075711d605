"""Command entry points for ``criu-py decode``, ``encode`` and ``show`` (crit's commands of the same names).

Each ``main_*`` parses its own arguments and returns an exit code: 0 on success, 1 when an image or JSON is
bad (one line on stderr: the file, the offset, the reason; no traceback), 2 for usage errors (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, BinaryIO, TextIO

from criu_core.errors import CriuError

__all__ = ["main_decode", "main_encode", "main_show"]


def _fail(prog: str, err: BaseException, stderr: TextIO) -> int:
    print(f"{prog}: {err}", file=stderr)
    return 1


def _out_text(path: str | None, text: str, stdout: TextIO) -> None:
    if path in (None, "-"):
        stdout.write(text)
        stdout.flush()
    else:
        with open(path, "w") as f:
            f.write(text)


def main_decode(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``decode -i FILE [-o OUT] [--pretty]``: image → crit JSON (stdin/stdout when a file is not given)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    p = argparse.ArgumentParser(prog="criu-py decode", description="convert an image file to JSON")
    p.add_argument("-i", "--in", dest="inp", default="-", help="image file (default: stdin)")
    p.add_argument("-o", "--out", default="-", help="JSON output (default: stdout)")
    p.add_argument("--pretty", action="store_true", help="indented JSON with hex, flag and device names")
    ns = p.parse_args(argv)
    from criu_core.images import jsonconv

    try:
        if ns.inp == "-":
            obj = jsonconv.decode_bytes(sys.stdin.buffer.read(), "<stdin>", ns.pretty)
        else:
            obj = jsonconv.decode_file(ns.inp, ns.pretty)
        text = json.dumps(obj, indent=4 if ns.pretty else None) + "\n"
        _out_text(ns.out, text, stdout)
    except CriuError as err:
        return _fail("decode", err, stderr)
    except OSError as err:
        return _fail("decode", f"{err.filename or ns.out}: {err.strerror}", stderr)
    return 0


def main_encode(argv: list[str] | None = None, *, stdin: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    """``encode -i JSON [-o FILE]``: crit JSON (plain or pretty) → image bytes."""
    stderr = stderr or sys.stderr
    p = argparse.ArgumentParser(prog="criu-py encode", description="convert JSON back to an image file")
    p.add_argument("-i", "--in", dest="inp", default="-", help="JSON input (default: stdin)")
    p.add_argument("-o", "--out", default="-", help="image output (default: stdout)")
    ns = p.parse_args(argv)
    from criu_core.errors import ImageFormatError
    from criu_core.images import jsonconv

    src = "<stdin>" if ns.inp == "-" else ns.inp
    try:
        if ns.inp == "-":
            raw = (stdin or sys.stdin.buffer).read()
        else:
            with open(ns.inp, "rb") as f:
                raw = f.read()
        try:
            obj: Any = json.loads(raw)
        except ValueError as err:
            raise ImageFormatError(src, getattr(err, "pos", 0), f"not JSON: {err}") from None
        data = jsonconv.encode_json(obj, src)
        if ns.out == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            with open(ns.out, "wb") as f:
                f.write(data)
    except CriuError as err:
        return _fail("encode", err, stderr)
    except OSError as err:
        return _fail("encode", f"{err.filename or src}: {err.strerror}", stderr)
    return 0


def main_show(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``show DIR``: summary of an image directory; ``show FILE``: the file as pretty JSON (as crit show)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    p = argparse.ArgumentParser(prog="criu-py show", description="summarise an image directory or file")
    p.add_argument("path", help="image directory, or one image file")
    ns = p.parse_args(argv)
    import os

    from criu_core.images import jsonconv

    try:
        if os.path.isdir(ns.path):
            _out_text(None, jsonconv.summarize_dir(ns.path), stdout)
        else:
            _out_text(None, json.dumps(jsonconv.decode_file(ns.path, True), indent=4) + "\n", stdout)
    except CriuError as err:
        return _fail("show", err, stderr)
    except OSError as err:
        return _fail("show", f"{err.filename or ns.path}: {err.strerror}", stderr)
    return 0


if __name__ == "__main__":  # python -m criu_core.images.tool decode|encode|show ...
    cmds = {"decode": main_decode, "encode": main_encode, "show": main_show}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print("usage: python -m criu_core.images.tool {decode,encode,show} ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))
