"""Built-in backends. Each subpackage is a plugin registered through the
``bertbridge.backends`` entry-point group, exactly as a third-party backend
would be, and imports its framework only when it trains or loads a model."""
