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
from typing import Callable, Iterator, Optional

import pluggy

from bertbridge.core import hookspecs
from bertbridge.core.backend import Backend
from bertbridge.core.errors import BackendError, ModelNotFoundError, UnknownBackendError, UnknownTaskError
from bertbridge.core.task import Task

ENTRY_POINT_GROUP = "bertbridge.backends"
TASK_ENTRY_POINT_GROUP = "bertbridge.tasks"
GROUPS = (ENTRY_POINT_GROUP, TASK_ENTRY_POINT_GROUP)
ENV_VAR = "BERTBRIDGE_BACKEND"
DEFAULT_BACKEND = "pytorch"

_lock = threading.RLock()  # reentrant: a plugin hook may itself look up models or backends
_pm: Optional[pluggy.PluginManager] = None
_backends: Optional["BackendRegistry"] = None
_tasks: Optional["TaskRegistry"] = None
_models: Optional["ModelRegistry"] = None
_broken_entry_points: dict[str, list["BrokenPlugin"]] = {}


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that failed to load; shown by ``bertbridge backends``."""

    name: str
    value: str
    error: str


class BackendRegistry:
    """Backends by name. Plugins call :meth:`add` from ``bertbridge_register_backends``."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}
        self.broken: list[BrokenPlugin] = []

    def add(self, backend: Backend) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(f"registry.add expects a bertbridge Backend instance, got {backend!r}")
        if backend.name in self._backends:
            raise BackendError(
                f"two plugins register a backend named {backend.name!r} "
                f"({type(self._backends[backend.name]).__module__} and {type(backend).__module__}); "
                "uninstall one of them."
            )
        self._backends[backend.name] = backend

    def names(self) -> list[str]:
        return sorted(self._backends)

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends[n] for n in self.names())

    def get(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        broken = [b for b in self.broken if b.name == name]
        if broken:
            raise UnknownBackendError(
                f"backend {name!r} is installed but its plugin {broken[0].value} failed to load: {broken[0].error}. "
                "Reinstall or upgrade that package."
            )
        raise UnknownBackendError(
            f"invalid backend name {name!r}; available: {', '.join(self.names()) or 'none'}.{hint} "
            f"Set it with --backend, the spec's 'backend' field or {ENV_VAR}."
        )


class TaskRegistry:
    """Tasks by name (the spec's ``task.type``). Plugins call :meth:`add` from ``bertbridge_register_tasks``."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self.broken: list[BrokenPlugin] = []

    def add(self, task: Task) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"registry.add expects a bertbridge Task instance, got {task!r}")
        if task.name in self._tasks:
            raise BackendError(
                f"two plugins register a task named {task.name!r} "
                f"({type(self._tasks[task.name]).__module__} and {type(task).__module__}); uninstall one of them."
            )
        self._tasks[task.name] = task

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks[n] for n in self.names())

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            pass
        broken = [b for b in self.broken if b.name == name]
        if broken:
            raise UnknownTaskError(
                f"task {name!r} is installed but its plugin {broken[0].value} failed to load: {broken[0].error}. "
                "Reinstall or upgrade that package."
            )
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = "" if self._tasks else " (no task plugin is installed: is bertbridge itself installed, e.g. pip install -e .?)"
        raise UnknownTaskError(
            f"invalid task type {name!r}; available: {', '.join(self.names()) or 'none'}{where}.{hint} "
            "Set task.type in the spec to one of them."
        )


@dataclass(frozen=True)
class ModelAlias:
    name: str
    resolve: Callable[[], Path]
    description: str


class ModelRegistry:
    """Model aliases by name. Plugins call :meth:`add` from ``bertbridge_register_models``."""

    def __init__(self) -> None:
        self._aliases: dict[str, ModelAlias] = {}
        self.broken: list[BrokenPlugin] = []

    def add(self, name: str, resolve: Callable[[], Path], description: str = "") -> None:
        if name in self._aliases:
            raise BackendError(f"two plugins register the model alias {name!r}; uninstall one of them.")
        self._aliases[name] = ModelAlias(name, resolve, description)

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

            pm.register(builtin_plugins, name="bertbridge.core.builtin")
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
        if pm.has_plugin(name) or pm.is_blocked(name):
            continue
        try:
            pm.register(ep.load(), name=name)
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


def backends() -> BackendRegistry:
    """The backend registry, filled from entry points on first use."""
    global _backends
    pm = plugin_manager()
    with _lock:
        if _backends is None:
            registry = BackendRegistry()
            registry.broken.extend(_broken_entry_points.get(ENTRY_POINT_GROUP, ()))
            _call_each(pm.hook.bertbridge_register_backends, registry, registry.broken)
            _backends = registry
        return _backends


def tasks() -> TaskRegistry:
    """The task registry, filled from entry points on first use."""
    global _tasks
    pm = plugin_manager()
    with _lock:
        if _tasks is None:
            registry = TaskRegistry()
            registry.broken.extend(_broken_entry_points.get(TASK_ENTRY_POINT_GROUP, ()))
            _call_each(pm.hook.bertbridge_register_tasks, registry, registry.broken)
            _tasks = registry
        return _tasks


def models() -> ModelRegistry:
    """The model-alias registry, filled by plugins on first use."""
    global _models
    pm = plugin_manager()
    with _lock:
        if _models is None:
            registry = ModelRegistry()
            _call_each(pm.hook.bertbridge_register_models, registry, registry.broken)
            _models = registry
        return _models


def reset() -> None:
    """Forget plugins and registries so the next use rebuilds them (for tests and
    for picking up packages installed after the first lookup)."""
    global _pm, _backends, _tasks, _models
    with _lock:
        _pm = _backends = _tasks = _models = None


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
