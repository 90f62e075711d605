"""RPC: ``criu-py swrk FD`` and ``criu-py service``, CRIU 4.2's protocol (``images/rpc.proto``, ``cr-service.c``).

Modules:

* :mod:`.transport` - one protobuf per SOCK_SEQPACKET datagram, sizes peeked, ``SO_PEERCRED``;
* :mod:`.worker` - the request loop (``keep_open``, exit codes) and one handler per request type;
* :mod:`.rpcopts` - ``criu_opts`` fields onto the command line's option names;
* :mod:`.setup` - precedence (worker options, request, RPC config file), images/work dirs from client fds,
  the log file, refusing options that are not implemented;
* :mod:`.notify` - notifications to the client and its acks, behind ``BaseContext.notify``;
* :mod:`.errinfo` - ``cr_errno`` and ``cr_errmsg`` (the first error line);
* :mod:`.server` - the swrk entry and the service's accept loop.

What the engines must do for notifications: call ``ctx.notify(name, pid=None)`` at CRIU's points (see
:meth:`criu_core.context.BaseContext.notify`); it is a no-op outside RPC.
"""

from __future__ import annotations

from criu_core.service.server import run_service, serve_swrk

__all__ = ["run_service", "serve_swrk"]
