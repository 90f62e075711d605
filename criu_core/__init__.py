"""criu-core: checkpoint/restore of Linux process trees, a Python reimplementation of CRIU 4.2.

The package stays cheap to import: the command line imports only what a command needs.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
