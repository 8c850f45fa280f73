"""The plugin manager and the registries it fills: tasks, backends and model aliases.

Built-in tasks and backends register through entry points exactly as third-party ones do;
:mod:`.builtin` is core's own plugin (the ``minilm`` alias and the metric logger).
"""
