"""Hugging Face models: model family ``hf-classifier`` (:mod:`.classifier`), a BERT-family sequence classifier
from a local folder or the packaged all-MiniLM-L6-v2; techniques ``lora`` (:mod:`.lora`, adapters via peft),
``prune-vocab`` (:mod:`.prune_vocabulary`) and ``factorize-embeddings`` (:mod:`.factorize_embeddings`)."""

from __future__ import annotations

import edgepeft

from .classifier import HFClassifier
from .factorize_embeddings import FactorizeEmbeddings
from .lora import Lora
from .prune_vocabulary import PruneVocabulary


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(HFClassifier)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Lora)
    register(PruneVocabulary)
    register(FactorizeEmbeddings)
