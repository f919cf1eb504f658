"""The files that pass between the stages, read and written in one place: the recipe, the run folder
(`edgepeft train`), the bundle and its manifest (`edgepeft deploy`, `edgepeft verify`)."""
