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

Notifications: the engines call ``ctx.notify(name, pid=None)`` (:meth:`criu_core.context.BaseContext.notify`,
a no-op outside RPC) where CRIU runs its action scripts; a refused ack raises, and the engine fails as for any
error (tasks released on dump, seeds killed on restore):

* dump: ``pre-dump`` before seizing the tree; ``query-ext-files`` once the tree is frozen, before the
  descriptors are dumped (the client's answer may add ``--external`` entries); ``post-dump`` after every
  image is written, while the tasks are still frozen, before the final state (kill / leave running);
* restore: ``pre-restore`` before the first seed is made; ``post-restore`` with ``pid=`` the root's real PID
  once every task is built, before detaching; ``pre-resume`` right before detaching; ``post-resume`` after
  the tasks run (a refusal there is only logged).
"""

from __future__ import annotations

from criu_core.service.server import run_service, serve_swrk

__all__ = ["run_service", "serve_swrk"]
