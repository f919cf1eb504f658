"""The contracts plugins implement and the types they receive: techniques, backends, data sets, model
families, tasks, device profiles and the training context. ``edgepeft/__init__.py`` re-exports the public names."""
