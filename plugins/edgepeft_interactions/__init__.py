"""User-item interactions with ratings: data sets ``movielens-100k`` (:mod:`.movielens`) and
``interactions-csv`` (:mod:`.interactions_csv`), each predicting a rating and a like head, split by time per
user (:mod:`.interaction_task`)."""

from __future__ import annotations

import edgepeft

from .interactions_csv import InteractionsCSV
from .movielens import MovieLens100K


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register(MovieLens100K)
    register(InteractionsCSV)
