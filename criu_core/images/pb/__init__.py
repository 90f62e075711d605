"""Generated protobuf modules, one per file in ../proto (``python -m criu_core.images.regen``).

Do not edit: regenerate. Import submodules explicitly (``from criu_core.images.pb import core_pb2``) or via
``criu_core.images.messages``. Importing this package loads no generated module; in the ``criu-py`` command it
keeps protobuf's pure-Python runtime off the import path (see criu_core.images.pbruntime) before any is loaded.
"""

from criu_core.images.pbruntime import defer_if_wanted

defer_if_wanted()
