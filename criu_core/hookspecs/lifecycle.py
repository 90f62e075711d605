"""Lifecycle hooks: options, configuration, init and fini of a stage, inventory checks, kernel checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.hookspecs import hookspec

if TYPE_CHECKING:
    from criu_core.context import BaseContext, CheckContext, RestoreContext
    from criu_core.options import OptionRegistry, Options

__all__ = [
    "criu_addoption",
    "criu_check_features",
    "criu_configure",
    "criu_fini",
    "criu_init",
    "criu_inventory_check",
]

# ----------------------------------------------------------------------------------------------------------
# setup
# ----------------------------------------------------------------------------------------------------------


@hookspec(historic=True)
def criu_addoption(parser: OptionRegistry) -> None:
    """Declare the plugin's own command-line options.

    Runs once when the host loads plugins (historic: a plugin registered later still gets the call). Options
    declared here are accepted on the command line, in configuration files and in RPC configuration files,
    for the stages given.

    :param parser: the option table; use ``parser.add_flag(...)`` and ``parser.add_option(...)``.

    .. versionadded:: 0.1
    """


@hookspec(historic=True)
def criu_configure(options: Options) -> None:
    """See the parsed options before any stage starts; raise a UsageError for a bad combination.

    :param options: every option's value, the plugin's own included.

    .. versionadded:: 0.1
    """


# ----------------------------------------------------------------------------------------------------------
# broadcast
# ----------------------------------------------------------------------------------------------------------


@hookspec
def criu_init(ctx: BaseContext, stage: str) -> None:
    """Start a stage (CRIU's INIT hook).

    Runs in the dumper/restorer after options are parsed and before any task is touched. ``stage`` is
    ``"dump"``, ``"pre-dump"``, ``"restore"`` or ``"check"``. A plugin that cannot work here (no device, no
    helper binary) should log why and stay quiet in the other hooks, unless a task needs it: then the hook
    that meets that task raises.

    :param ctx: the run's context.
    :param stage: the stage that starts.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """


@hookspec
def criu_fini(ctx: BaseContext, stage: str, success: bool) -> None:
    """End a stage (CRIU's FINI hook); runs after success and after failure.

    On a failed or ``--leave-running`` dump, a plugin undoes what it did to the tasks (unlock devices...). At
    dump it runs before the tree is released or killed (as CRIU's ``cr_dump_finish``), from the tracer thread,
    so the tasks are still seized: ``ctx.thread_running`` and ioctls reserved to the tracer still work. At
    restore it runs after the tasks were detached (or killed).

    :param ctx: the run's context.
    :param stage: the stage that ends.
    :param success: whether the stage succeeded.

    Broadcast: every implementation runs; exceptions are logged, not raised.

    .. versionadded:: 0.1
    """


@hookspec
def criu_inventory_check(ctx: RestoreContext, inventory: Any) -> None:
    """Vet the images' inventory before a restore touches anything.

    Runs right after the inventory is read and the plugins it names are found. Raise a CriuError to refuse
    (for example: dumped with ``--allow-uprobes`` but restored without it).

    :param ctx: the restore's context.
    :param inventory: the ``inventory_entry`` message.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """


@hookspec
def criu_check_features(ctx: CheckContext) -> list[tuple[str, bool, str]] | None:
    """Add feature probes to ``criu-py check``.

    :param ctx: the check's context.
    :return: a list of ``(feature name, supported, detail)``, or ``None``.

    Broadcast: every implementation runs; results are concatenated.

    .. versionadded:: 0.1
    """
