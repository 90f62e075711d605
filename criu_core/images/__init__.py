"""The image layer: CRIU 4.2 image files, read and written byte-compatibly.

Modules (each imported on first use; importing this package loads no protobuf code):

* :mod:`.magic` - the table of image names, magics, messages and file-name patterns;
* :mod:`.framing` - header checks, ``u32 size + protobuf`` entries, raw extras; :func:`read_image`,
  :func:`write_image`, :func:`decode`, :func:`encode`;
* :mod:`.imagedir` - :class:`ImageDir`, what dump and restore use;
* :mod:`.pagemap` - page counts (field 5 vs the pre-4.2 field 2) and page offsets;
* :mod:`.vma` - the ``vma_entry.status`` bits (``VMA_AREA_*``), shared by dump, restore and ``show``;
* :mod:`.criu_core_task` - criu-core's own per-task image ``criu-core-PID.img`` (not CRIU's);
* :mod:`.messages` - lazy access to the generated classes (``message_class("core.core_entry")``);
* :mod:`.jsonconv` - crit-compatible JSON (``decode_file``, ``encode_json``) and ``summarize_dir``;
* :mod:`.tool` - ``decode``/``encode``/``show`` command entry points;
* :mod:`.regen` - regenerates ``pb/`` from ``proto/``.

Every failure on bad input is a :class:`criu_core.errors.ImageFormatError` naming the file and offset.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Entry",
    "Image",
    "ImageDir",
    "decode",
    "decode_file",
    "encode",
    "encode_json",
    "message_class",
    "read_image",
    "summarize_dir",
    "write_image",
]

_LAZY = {
    "Entry": "framing",
    "Image": "framing",
    "decode": "framing",
    "encode": "framing",
    "read_image": "framing",
    "write_image": "framing",
    "ImageDir": "imagedir",
    "message_class": "messages",
    "decode_file": "jsonconv",
    "encode_json": "jsonconv",
    "summarize_dir": "jsonconv",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
