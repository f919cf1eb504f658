"""From a run folder to a device: export through the parity gate, the operator check (`edgepeft check`),
profiling against a device's budgets (`edgepeft profile`), and the deployable bundle (`edgepeft deploy`)."""
