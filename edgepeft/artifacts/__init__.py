"""The files that pass between the stages, read and written in one place: the recipe, the run folder and its
metrics (`edgepeft train`), the export record (`edgepeft export`), the bundle and its manifest (`edgepeft
deploy`, `edgepeft verify`) and the search's trials. Each JSON file is a pydantic model with a
``schema_version``; docs/formats.md is generated from them (scripts/gen_formats.py)."""
