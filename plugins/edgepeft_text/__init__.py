"""Text: data sets ``rotten-tomatoes`` (:mod:`.rotten_tomatoes`) and ``text-csv`` (:mod:`.text_csv`), short
texts with a class tokenized for a BERT-family model (:mod:`.tokenizer`), split with a fixed seed, stratified by
class; technique ``augment-text`` (:mod:`.augment_text`): perturbed copies of the training texts."""

from __future__ import annotations

import edgepeft

from .augment_text import AugmentText
from .rotten_tomatoes import RottenTomatoes
from .text_csv import TextCSV


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register(RottenTomatoes)
    register(TextCSV)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(AugmentText)
