"""Generated protobuf modules, one per file in ../proto (``python -m criu_core.images.regen``).

Do not edit: regenerate. Import submodules explicitly (``from criu_core.images.pb import core_pb2``) or via
``criu_core.images.messages``; this package itself imports nothing, so that loading criu_core.images stays cheap.
"""
