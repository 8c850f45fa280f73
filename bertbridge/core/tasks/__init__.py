"""The built-in tasks, each a plugin like a third party's: :mod:`.classification` and :mod:`.qa`.

A task implements :class:`bertbridge.core.task.Task` and registers it from the
``bertbridge_register_tasks`` hook of a module named in the ``bertbridge.tasks`` entry-point group.
"""
