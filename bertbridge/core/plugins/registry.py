"""The plugin manager, the task, backend and model-alias registries, and backend selection.

Tasks and backends are found through the ``bertbridge.tasks`` and ``bertbridge.backends``
entry-point groups; the built-in ones register exactly like a third-party package would.
Each entry point is loaded on its own: a broken plugin is reported by ``bertbridge tasks``
and ``bertbridge backends`` instead of breaking every other plugin.

Backend selection order (first that is set wins): the explicit ``backend=`` argument
or ``--backend`` flag, then the spec's ``backend`` field, then the
``BERTBRIDGE_BACKEND`` environment variable, then ``pytorch``.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Optional, TypeVar

import pluggy

from bertbridge.core import hookspecs
from bertbridge.core.backend import Backend
from bertbridge.core.errors import BackendError, ModelNotFoundError, NotSupportedError, UnknownBackendError, UnknownTaskError
from bertbridge.core.task import Task

T = TypeVar("T")
ENTRY_POINT_GROUP = "bertbridge.backends"
TASK_ENTRY_POINT_GROUP = "bertbridge.tasks"
GROUPS = (ENTRY_POINT_GROUP, TASK_ENTRY_POINT_GROUP)
ENV_VAR = "BERTBRIDGE_BACKEND"
DEFAULT_BACKEND = "pytorch"

_lock = threading.RLock()  # reentrant: a plugin hook may itself look up models or backends
_pm: Optional[pluggy.PluginManager] = None
_registries: dict[str, Any] = {}  # by the hook that fills them
_broken_entry_points: dict[str, list["BrokenPlugin"]] = {}


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that failed to load; shown by ``bertbridge backends``."""

    name: str
    value: str
    error: str


class _NamedRegistry(Generic[T]):
    """Plugin-provided objects by their ``name``: the shared half of the task and backend registries."""

    kind: str  # "backend", "task": for messages
    item_type: type
    unknown: type  # the error for a name nobody registered

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self.broken: list[BrokenPlugin] = []

    def add(self, item: T) -> None:
        if not isinstance(item, self.item_type):
            raise TypeError(f"registry.add expects a bertbridge {self.item_type.__name__} instance, got {item!r}")
        if item.name in self._items:
            raise BackendError(
                f"two plugins register a {self.kind} named {item.name!r} "
                f"({type(self._items[item.name]).__module__} and {type(item).__module__}); uninstall one of them."
            )
        self._items[item.name] = item

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[n] for n in self.names())

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        broken = [b for b in self.broken if b.name == name]
        if broken:
            raise self.unknown(
                f"{self.kind} {name!r} is installed but its plugin {broken[0].value} failed to load: {broken[0].error}. "
                "Reinstall or upgrade that package."
            )
        close = difflib.get_close_matches(name, self.names(), n=1)
        raise self.unknown(self._invalid(name, f" Did you mean {close[0]!r}?" if close else ""))

    def _invalid(self, name: str, hint: str) -> str:
        raise NotImplementedError


class BackendRegistry(_NamedRegistry[Backend]):
    """Backends by name. Plugins call :meth:`add` from ``bertbridge_register_backends``."""

    kind, item_type, unknown = "backend", Backend, UnknownBackendError

    def _invalid(self, name: str, hint: str) -> str:
        return (f"invalid backend name {name!r}; available: {', '.join(self.names()) or 'none'}.{hint} "
                f"Set it with --backend, the spec's 'backend' field or {ENV_VAR}.")


class TaskRegistry(_NamedRegistry[Task]):
    """Tasks by name (the spec's ``task.type``). Plugins call :meth:`add` from ``bertbridge_register_tasks``."""

    kind, item_type, unknown = "task", Task, UnknownTaskError

    def _invalid(self, name: str, hint: str) -> str:
        where = "" if self._items else " (no task plugin is installed: is bertbridge itself installed, e.g. pip install -e .?)"
        return (f"invalid task type {name!r}; available: {', '.join(self.names()) or 'none'}{where}.{hint} "
                "Set task.type in the spec to one of them, or install the plugin that provides this task.")


@dataclass(frozen=True)
class ModelAlias:
    name: str
    resolve: Callable[[], Path]
    description: str
    hub_id: str = ""
    """The Hugging Face Hub id of the model it resolves to (for model cards' ``base_model``), when known."""


class ModelRegistry:
    """Model aliases by name. Plugins call :meth:`add` from ``bertbridge_register_models``."""

    def __init__(self) -> None:
        self._aliases: dict[str, ModelAlias] = {}
        self.broken: list[BrokenPlugin] = []

    def add(self, name: str, resolve: Callable[[], Path], description: str = "", hub_id: str = "") -> None:
        if name in self._aliases:
            raise BackendError(f"two plugins register the model alias {name!r}; uninstall one of them.")
        self._aliases[name] = ModelAlias(name, resolve, description, hub_id)

    def hub_id(self, name: str) -> str:
        """The Hub id of alias ``name`` ("" for a folder path or an alias that names none)."""
        alias = self._aliases.get(name)
        return alias.hub_id if alias is not None else ""

    def aliases(self) -> list[ModelAlias]:
        return [self._aliases[n] for n in sorted(self._aliases)]

    def resolve(self, name: str) -> Path:
        """A local model folder for ``name``: an existing folder path, or an alias."""
        path = Path(name).expanduser()
        if path.is_dir():
            return path.resolve()
        if name in self._aliases:
            return Path(self._aliases[name].resolve())
        known = ", ".join(self._aliases) or "none"
        raise ModelNotFoundError(
            f"model {name!r} is neither a local folder nor a known alias (aliases: {known}). "
            "Set model.name to the path of a Hugging Face model folder (config.json, model.safetensors, "
            "tokenizer files) or to an alias; models are never downloaded."
        )


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use (no import-time side effects)."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            from bertbridge.core.plugins import builtin as builtin_plugins
            from bertbridge.core.plugins.tracking import TrackingPlugin

            pm.register(builtin_plugins, name="bertbridge.core.builtin")
            pm.register(TrackingPlugin(), name="bertbridge.core.tracking")
            _broken_entry_points.clear()
            for group in GROUPS:
                _broken_entry_points[group] = _load_entry_points(pm, group)
            _pm = pm
        return _pm


def _load_entry_points(pm: pluggy.PluginManager, group: str) -> list[BrokenPlugin]:
    """Register every plugin of an entry-point group; returns the ones that failed to load."""
    broken = []
    for ep in importlib.metadata.entry_points(group=group):
        name = f"{group}:{ep.name}"
        if pm.has_plugin(name) or pm.is_blocked(name):  # the same distribution seen twice on sys.path
            continue
        try:
            plugin = ep.load()
            if not pm.is_registered(plugin):  # one module may serve both groups (a backend that adds a task)
                pm.register(plugin, name=name)
        except Exception as exc:  # a third-party plugin's bug must not break the others
            broken.append(BrokenPlugin(ep.name, ep.value, f"{type(exc).__name__}: {exc}"))
    return broken


def _call_each(hook, registry, broken: list) -> None:
    """Call every plugin's implementation on its own: one plugin's exception is
    recorded against that plugin instead of breaking every command."""
    for impl in hook.get_hookimpls():
        try:
            impl.function(**{name: registry for name in impl.argnames})
        except Exception as exc:
            name = impl.plugin_name.rpartition(":")[2]  # entry-point plugins are named "group:name"
            broken.append(BrokenPlugin(name, impl.plugin_name, f"{type(exc).__name__}: {exc}"))


def _filled(make: Callable[[], Any], hook: str, group: Optional[str] = None) -> Any:
    """The registry ``make`` builds, filled once by every plugin's ``hook`` (plus the entry points of
    ``group`` that failed to load, listed as broken)."""
    pm = plugin_manager()
    with _lock:
        if hook not in _registries:
            registry = make()
            registry.broken.extend(_broken_entry_points.get(group, ()) if group else ())
            _call_each(getattr(pm.hook, hook), registry, registry.broken)
            _registries[hook] = registry
        return _registries[hook]


def backends() -> BackendRegistry:
    """The backend registry, filled from entry points on first use."""
    return _filled(BackendRegistry, "bertbridge_register_backends", ENTRY_POINT_GROUP)


def tasks() -> TaskRegistry:
    """The task registry, filled from entry points on first use."""
    return _filled(TaskRegistry, "bertbridge_register_tasks", TASK_ENTRY_POINT_GROUP)


def models() -> ModelRegistry:
    """The model-alias registry, filled by plugins on first use."""
    return _filled(ModelRegistry, "bertbridge_register_models")


def reset() -> None:
    """Forget plugins and registries so the next use rebuilds them (for tests and
    for picking up packages installed after the first lookup)."""
    global _pm
    with _lock:
        _pm = None
        _registries.clear()


def backend_name(explicit: Optional[str] = None, spec_value: Optional[str] = None) -> str:
    """The backend name by precedence: argument > spec > $BERTBRIDGE_BACKEND > pytorch."""
    for value in (explicit, spec_value, os.environ.get(ENV_VAR)):
        if value:
            return value.strip()
    return DEFAULT_BACKEND


def select_backend(explicit: Optional[str] = None, spec_value: Optional[str] = None, *, task: Optional[str] = None) -> Backend:
    """Look up the backend by precedence, check its framework is installed and,
    when ``task`` is given, that it can do that task."""
    backend = backends().get(backend_name(explicit, spec_value))
    backend.ensure_available()
    if task is not None:
        backend.ensure_supports(task, tasks().get(task).head)
    return backend


def export_reader(fmt: str) -> Optional[Backend]:
    """The backend that opens ``fmt`` exports (an installed one first), or None when no backend
    loads that format (its folder is then opened by its weights, like a model folder)."""
    readers = [b for b in backends() if fmt in b.loads_exports]
    if not readers:
        return None
    installed = [b for b in readers if b.status().available]
    chosen = (installed or readers)[0]
    chosen.ensure_available()
    return chosen


def export_refiner(fmt: str, quantize: Optional[str]) -> Backend:
    """The backend that graph-optimizes (and, with ``quantize``, quantizes) ``fmt`` exports."""
    able = [b for b in backends() if fmt in b.quantizes and (quantize is None or quantize in b.quantizes[fmt])]
    if not able:
        offers = sorted(f"{f}: {', '.join(q) or 'optimize only'} ({b.name})" for b in backends() for f, q in b.quantizes.items())
        asked = f"quantize {fmt!r} exports to {quantize}" if quantize else f"optimize {fmt!r} exports"
        raise NotSupportedError(f"no backend can {asked}; available: {'; '.join(offers) or 'none'}.")
    installed = [b for b in able if b.status().available]
    chosen = (installed or able)[0]
    chosen.ensure_available()
    return chosen
