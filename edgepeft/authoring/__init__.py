"""For plugin authors: the conformance checks behind `edgepeft plugins check`, the example task they run on,
and the package scaffold of `edgepeft plugin new`."""
