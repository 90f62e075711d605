"""crit-compatible JSON: ``{"magic": NAME, "entries": [...]}`` both ways, and a summary of an image directory.

The JSON shape is crit's (pycriu ``pb2dict``), so crit and criu-py can read each other's output:

* fields by their proto names, only fields that are present; integers as numbers, enums by name, bytes as
  base64 (with crit's line breaks), unix socket names quoted-printable;
* pretty mode adds crit's conversions (:mod:`criu_core.images.pretty`): hex strings, flag names joined with
  ``" | "``, socket dict names, ``"major:minor"`` devices, IP address strings;
* pagemap: the head is the first entry; raw extras go into ``"extra"`` (base64; ``{"inq", "outq"}`` for
  tcp-stream; a list of u16 values for ipcns-sem; alternating message/base64 for ipcns-msg).

:func:`encode_json` accepts plain and pretty JSON (and crit's) and gives back the exact bytes the image was
decoded from. Problems in the JSON raise :class:`~criu_core.errors.ImageFormatError` with offset 0 and the
JSON path of the bad value.
"""

from __future__ import annotations

import base64
import os
import quopri
import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from criu_core.errors import ImageFormatError
from criu_core.images import framing, magic
from criu_core.images.pretty import (
    FIELD_HINTS,
    FLAG_MAPS,
    GEN_MAPS,
    SK_MAPS,
    TASK_STATE_CRIT,
    map_flags,
    unmap_flags,
)

__all__ = ["decode_bytes", "decode_file", "dict_to_message", "encode_json", "message_to_dict", "summarize_dir"]

_DICTS = {"sk": SK_MAPS, "gen": GEN_MAPS}
_KERN_MINORBITS = 20  # the kernel's internal dev_t layout, used in images


# ---------------------------------------------------------------------------------------------------------
# message <-> dict


def _b64(data: bytes) -> str:
    return base64.encodebytes(bytes(data)).decode()


def _unb64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{where}: expected a base64 string")
    return base64.decodebytes(text.encode())


def _field_types() -> Any:
    from google.protobuf.descriptor import FieldDescriptor

    return FieldDescriptor


def _scalar_to_json(fd: Any, value: Any, hints: frozenset[str], pretty: bool, is_hex: bool) -> Any:
    FD = _field_types()
    if fd.type == FD.TYPE_BYTES:
        if "conv:unix_name" in hints:
            return quopri.encodestring(bytes(value)).decode()
        return _b64(value)
    if fd.type == FD.TYPE_ENUM:
        ev = fd.enum_type.values_by_number.get(value)
        return ev.name if ev is not None else value
    if fd.type in (FD.TYPE_BOOL, FD.TYPE_STRING):
        return value
    if not pretty:
        return value
    if is_hex or "hex" in hints:
        return f"0x{value:x}"
    if "dev" in hints:
        if "odev" in hints:
            return f"{os.major(value)}:{os.minor(value)}"
        return f"{value >> _KERN_MINORBITS}:{value & ((1 << _KERN_MINORBITS) - 1)}"
    for h in hints:
        if h.startswith("flags:"):
            return map_flags(value, FLAG_MAPS[h[6:]])
        if h.startswith("dict:"):
            return _DICTS[h[5:]].get(fd.name, {}).get(value, value)
    return value


def _ip_words_to_str(words: list[int]) -> str | None:
    if len(words) == 1:
        return str(IPv4Address(socket.ntohl(words[0])))
    if len(words) == 4:
        v = 0
        for w in words:
            v = (v << 32) | socket.ntohl(w)
        return IPv6Address(v).compressed
    return None


def _value_to_json(fd: Any, value: Any, hints: frozenset[str], pretty: bool, is_hex: bool) -> Any:
    if fd.type == _field_types().TYPE_MESSAGE:
        return message_to_dict(value, pretty, is_hex)
    return _scalar_to_json(fd, value, hints, pretty, is_hex)


def message_to_dict(msg: Any, pretty: bool = False, _is_hex: bool = False) -> dict[str, Any]:
    """One message as crit's dict (only present fields, in field-number order)."""
    FD = _field_types()
    out: dict[str, Any] = {}
    mname = msg.DESCRIPTOR.name
    for fd, value in msg.ListFields():
        hints = FIELD_HINTS.get((mname, fd.name), frozenset())
        is_hex = _is_hex or (pretty and "hex" in hints)
        if fd.label != FD.LABEL_REPEATED:
            out[fd.name] = _value_to_json(fd, value, hints, pretty, is_hex)
            continue
        if pretty and "ipadd" in hints:
            text = _ip_words_to_str(list(value))
            if text is not None:
                out[fd.name] = [text]
                continue
        out[fd.name] = [_value_to_json(fd, v, hints, pretty, is_hex) for v in value]
    return out


def _scalar_from_json(fd: Any, value: Any, hints: frozenset[str], where: str) -> Any:
    FD = _field_types()
    if fd.type == FD.TYPE_BYTES:
        if "conv:unix_name" in hints:
            return quopri.decodestring(value.encode())
        return _unb64(value, where)
    if fd.type == FD.TYPE_ENUM:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        ev = fd.enum_type.values_by_name.get(value)
        if ev is None:
            raise ValueError(f"{where}: {value!r} is not a value of {fd.enum_type.name}")
        return ev.number
    if fd.type == FD.TYPE_BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false")
        return value
    if fd.type == FD.TYPE_STRING:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string")
        return value
    if isinstance(value, bool):
        raise TypeError(f"{where}: expected a number")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a number")
    if "dev" in hints and ":" in value:
        major, minor = (int(x) for x in value.split(":", 1))
        return os.makedev(major, minor) if "odev" in hints else (major << _KERN_MINORBITS) | minor
    for h in hints:
        if h.startswith("flags:"):
            return unmap_flags(value, FLAG_MAPS[h[6:]])
        if h.startswith("dict:"):
            for num, name in _DICTS[h[5:]].get(fd.name, {}).items():
                if name == value:
                    return num
    if fd.name == "task_state" and value in TASK_STATE_CRIT:
        return TASK_STATE_CRIT[value]
    return int(value, 0)


def _ip_str_to_words(text: str) -> list[int]:
    addr = ip_address(text)
    v = int(addr)
    n = 1 if addr.version == 4 else 4
    return [socket.htonl((v >> (32 * (n - 1 - i))) & 0xFFFFFFFF) for i in range(n)]


def dict_to_message(d: dict[str, Any], msg: Any, where: str = "$") -> Any:
    """Fill ``msg`` from a crit dict (plain or pretty); returns ``msg``. Raises ValueError naming the path."""
    FD = _field_types()
    if not isinstance(d, dict):
        raise TypeError(f"{where}: expected an object for {msg.DESCRIPTOR.name}")
    fields = msg.DESCRIPTOR.fields_by_name
    for key in d:
        if key not in fields:
            raise ValueError(f"{where}: {msg.DESCRIPTOR.name} has no field {key!r}")
    mname = msg.DESCRIPTOR.name
    for fd in msg.DESCRIPTOR.fields:  # declaration order; serialization sorts by number anyway
        if fd.name not in d:
            continue
        value = d[fd.name]
        path = f"{where}.{fd.name}"
        hints = FIELD_HINTS.get((mname, fd.name), frozenset())
        try:
            if fd.label == FD.LABEL_REPEATED:
                if not isinstance(value, list):
                    raise ValueError(f"{path}: expected a list")
                target = getattr(msg, fd.name)
                if "ipadd" in hints and value and isinstance(value[0], str) and not value[0].startswith("0x"):
                    for text in value:
                        target.extend(_ip_str_to_words(text))
                    continue
                for i, v in enumerate(value):
                    if fd.type == FD.TYPE_MESSAGE:
                        dict_to_message(v, target.add(), f"{path}[{i}]")
                    else:
                        target.append(_scalar_from_json(fd, v, hints, f"{path}[{i}]"))
            elif fd.type == FD.TYPE_MESSAGE:
                sub = getattr(msg, fd.name)
                sub.SetInParent()  # present even when empty, as protobuf-c's has_* would be
                dict_to_message(value, sub, path)
            else:
                setattr(msg, fd.name, _scalar_from_json(fd, value, hints, path))
        except (ValueError, TypeError) as err:
            text = str(err)
            raise ValueError(text if text.startswith("$") else f"{path}: {text}") from None
        except (AttributeError, KeyError, OverflowError) as err:
            raise ValueError(f"{path}: bad value {value!r}: {err}") from None
    return msg


# ---------------------------------------------------------------------------------------------------------
# whole images


def _extra_to_json(itype: magic.ImageType, extra: Any, pretty: bool) -> Any:
    if itype.extra == "tcp_stream":
        return {"inq": _b64(extra["inq"]), "outq": _b64(extra["outq"])}
    if itype.extra == "ipc_sem":
        return list(struct.unpack(f"<{len(extra) // 2}H", extra))
    if itype.extra == "ipc_msg":
        out: list[Any] = []
        for m, data in extra:
            out += [message_to_dict(m, pretty), _b64(data)]
        return out
    return _b64(extra)


def decode_bytes(data: bytes, path: str = "<bytes>", pretty: bool = False) -> dict[str, Any]:
    """Decode an image's bytes into crit's JSON shape. Raises ImageFormatError."""
    img = framing.decode(data, path)
    entries = []
    for ent in img.entries:
        if isinstance(ent.msg, (bytes, bytearray)):
            raise ImageFormatError(path, ent.offset, f"no message type is known for {img.type.name} entries")
        d = message_to_dict(ent.msg, pretty)
        if ent.extra is not None:
            d["extra"] = _extra_to_json(img.type, ent.extra, pretty)
        entries.append(d)
    return {"magic": img.type.name, "entries": entries}


def decode_file(path: str | os.PathLike[str], pretty: bool = False) -> dict[str, Any]:
    """Decode one image file into ``{"magic": NAME, "entries": [...]}``, as ``crit decode`` does.

    The type comes from the magic, not the file name (so renamed files decode too). Raw images such as
    pages-N.img have no magic and raise ImageFormatError.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ImageFormatError(path, 0, f"cannot read: {err.strerror or err}") from None
    return decode_bytes(data, path, pretty)


def _extra_from_json(itype: magic.ImageType, extra: Any, where: str) -> Any:
    from criu_core.images.messages import message_class

    if itype.extra == "tcp_stream":
        if not isinstance(extra, dict):
            raise ValueError(f"{where}: expected {{'inq': ..., 'outq': ...}}")
        return {"inq": _unb64(extra.get("inq", ""), where), "outq": _unb64(extra.get("outq", ""), where)}
    if itype.extra == "ipc_sem":
        if not isinstance(extra, list) or not all(isinstance(v, int) and 0 <= v < 65536 for v in extra):
            raise ValueError(f"{where}: expected a list of u16 values")
        return struct.pack(f"<{len(extra)}H", *extra)
    if itype.extra == "ipc_msg":
        if not isinstance(extra, list) or len(extra) % 2:
            raise ValueError(f"{where}: expected alternating message objects and base64 strings")
        cls = message_class("ipc_msg.ipc_msg")
        return [
            (dict_to_message(extra[i], cls(), f"{where}[{i}]"), _unb64(extra[i + 1], f"{where}[{i + 1}]"))
            for i in range(0, len(extra), 2)
        ]
    return _unb64(extra, where)


def encode_json(obj: dict[str, Any], path: str = "<json>") -> bytes:
    """Encode crit's JSON shape (plain or pretty) back into image bytes; the inverse of :func:`decode_file`.

    Raises ImageFormatError (offset 0, the reason names the JSON path) for anything that does not fit.
    """
    from criu_core.images.messages import message_class

    try:
        if not isinstance(obj, dict) or not isinstance(obj.get("magic"), str):
            raise TypeError('$: expected {"magic": NAME, "entries": [...]}')
        itype = magic.BY_NAME.get(obj["magic"])
        if itype is None or itype.kind == "raw" or itype.message is None:
            raise ValueError(f"$.magic: cannot encode images of type {obj['magic']!r}")
        raw_entries = obj.get("entries", [])
        if not isinstance(raw_entries, list):
            raise TypeError("$.entries: expected a list")
        entries = []
        for i, d in enumerate(raw_entries):
            where = f"$.entries[{i}]"
            if not isinstance(d, dict):
                raise TypeError(f"{where}: expected an object")
            d = dict(d)
            extra = d.pop("extra", None)
            qualname = itype.message
            if itype.extra == "pagemap" and i == 0:
                qualname = "pagemap.pagemap_head"
            elif itype.extra == "ghost_file" and i > 0:
                qualname = "ghost_file.ghost_chunk_entry"
            msg = dict_to_message(d, message_class(qualname)(), where)
            if extra is not None:
                extra = _extra_from_json(itype, extra, f"{where}.extra")
            entries.append(framing.Entry(msg, extra))
        return framing.encode(itype, entries)
    except (ValueError, TypeError) as err:
        raise ImageFormatError(path, 0, str(err)) from None
    except Exception as err:
        if type(err).__name__ != "EncodeError":
            raise
        raise ImageFormatError(path, 0, str(err)) from None


# ---------------------------------------------------------------------------------------------------------
# directory summary (criu-py show DIR)


def _fd_type_name(value: int) -> str:
    from criu_core.images.messages import pb_module

    ev = pb_module("fdinfo").fd_types.DESCRIPTOR.values_by_number.get(value)
    return ev.name if ev else str(value)


def summarize_dir(path: str | os.PathLike[str]) -> str:
    """A human summary of an image directory: inventory facts, then the task tree with per-task VMAs,
    dumped pages and descriptors. Raises ImageFormatError if a needed image is corrupt or missing."""
    from criu_core.images import pagemap as pm

    d = os.fspath(path)

    def load(name: str, ident: int | str | None = None) -> framing.Image | None:
        p = os.path.join(d, magic.filename_for(name, ident))
        return framing.read_image(p, name) if os.path.exists(p) else None

    lines = [f"images: {d}"]
    inv = load("INVENTORY")
    if inv is None or not inv.entries:
        raise ImageFormatError(os.path.join(d, "inventory.img"), 0, "missing or empty inventory")
    ie = inv.entries[0].msg
    plugins = list(ie.plugins_entry.plugins) if ie.HasField("plugins_entry") else None
    lines.append(
        f"inventory: img_version={ie.img_version} fdinfo_per_id={ie.fdinfo_per_id} ns_per_id={ie.ns_per_id}"
        f" root_cg_set={ie.root_cg_set} lsm={_enum_name(ie, 'lsmtype')}"
    )
    lines.append(
        "  plugins: "
        + ("(no plugins_entry: all plugins)" if plugins is None else (", ".join(plugins) or "(none)"))
        + f"; allow_uprobes={ie.allow_uprobes}"
        + (f"; run id {ie.dump_criu_run_id}" if ie.dump_criu_run_id else "")
    )
    files = {}
    fimg = load("FILES")
    if fimg is not None:
        files = {e.msg.id: e.msg for e in fimg.entries}
    pst = load("PSTREE")
    tasks = pst.messages if pst is not None else []
    depth: dict[int, int] = {}
    lines.append(f"tasks: {len(tasks)}")
    for t in tasks:
        depth[t.pid] = depth.get(t.ppid, -1) + 1 if t.ppid in depth else 0
        pad = "  " * (depth[t.pid] + 1)
        core = load("CORE", t.pid)
        comm = (
            core.entries[0].msg.tc.comm
            if core is not None and core.entries and core.entries[0].msg.HasField("tc")
            else "?"
        )
        threads = ",".join(str(x) for x in t.threads)
        lines.append(f"{pad}{t.pid} ppid={t.ppid} pgid={t.pgid} sid={t.sid} comm={comm} threads=[{threads}]")
        mm = load("MM", t.pid)
        nvmas = len(mm.entries[0].msg.vmas) if mm is not None and mm.entries else 0
        pmap = load("PAGEMAP", t.pid)
        pages = 0
        pages_id = None
        if pmap is not None and pmap.entries:
            pages_id = pmap.entries[0].msg.pages_id
            pages = sum(pm.nr_pages(e.msg) for e in pmap.entries[1:] if pm.flags(e.msg) & pm.PE_PRESENT)
        where = f" in pages-{pages_id}.img" if pages_id is not None else ""
        lines.append(f"{pad}  vmas={nvmas} pages={pages}{where}")
        own = load("CRIU_CORE_TASK", t.pid)  # criu-core's own image, for a task with more than CRIU's images say
        if own is not None and own.entries:
            o = own.entries[0].msg
            facts = [f"exit_signal={o.exit_signal}"] if o.HasField("exit_signal") else []
            facts += [f"[anon:{n.name}] at {n.start:#x}" for n in o.vma_names]
            if o.parent_pages:
                facts.append(f"pages left to the parent={sum(r.nr_pages for r in o.parent_pages)}")
            lines.append(f"{pad}  criu-core-{t.pid}.img: {' '.join(facts) or '(empty)'}")
        ids = load("IDS", t.pid)
        if ids is not None and ids.entries:
            fdi = load("FDINFO", ids.entries[0].msg.files_id)
            for fe in fdi.messages if fdi is not None else []:
                desc = _describe_file(files.get(fe.id), fe.type)
                lines.append(f"{pad}  fd {fe.fd}: {_fd_type_name(fe.type)} {desc}".rstrip())
    return "\n".join(lines) + "\n"


def _enum_name(msg: Any, field: str) -> str:
    fd = msg.DESCRIPTOR.fields_by_name[field]
    ev = fd.enum_type.values_by_number.get(getattr(msg, field))
    return ev.name if ev else str(getattr(msg, field))


def _describe_file(fe: Any, fd_type: int) -> str:
    if fe is None:
        return "(no files.img entry)"
    if fe.HasField("reg"):
        return fe.reg.name
    if fe.HasField("pipe"):
        return f"pipe:[{fe.pipe.pipe_id}]"
    if fe.HasField("usk"):
        name = bytes(fe.usk.name).rstrip(b"\0").decode(errors="replace")
        return f"socket:[{fe.usk.ino}]" + (f" {name}" if name else "")
    if fe.HasField("isk"):
        return f"socket:[{fe.isk.ino}] port {fe.isk.src_port}"
    if fe.HasField("efd"):
        return f"eventfd count={fe.efd.counter}"
    return ""
