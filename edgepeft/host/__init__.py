"""The plugin host: hook specifications, the plugin manager (entry points, blocking), the typed registries and
the optional-package checks."""
