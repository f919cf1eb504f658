"""``edgepeft search``: the students a recipe's ``[search]`` space allows, trained and measured on a device
profile, with the accuracy/size/latency Pareto front and the best one that meets every budget.

The optimizer is Optuna's multi-objective TPE (maximize validation accuracy, minimize file size and
device p95 latency), with the profile's budgets as constraints. TPE, rather than NSGA-II, because a
search here has tens of trials, not the hundreds a genetic population needs, and TPE handles
categorical and conditional settings (a technique switched off has no options to sample). The test
split never steers the search: objectives use the validation split; test accuracy is only reported.

Every trial is stored as it ends (Optuna's SQLite study plus ``trials.json``); ``--resume`` continues
an interrupted search without rerunning finished trials. A seed fixes the trials of a fresh search.
"""
