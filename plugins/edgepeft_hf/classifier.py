"""Model family ``hf-classifier``: a Hugging Face sequence classifier (BERT family) from a local folder.

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
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

import edgepeft
from edgepeft import ModelFamily, StrictModel

from .build import build_classifier
from .model_folder import MINILM, model_folder

if TYPE_CHECKING:
    import torch


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


def hf_student(model: torch.nn.Module, technique: str) -> torch.nn.Module:
    """``model`` when it is an hf-classifier, else a ConfigError naming ``technique``."""
    if not hasattr(model, "prune_vocabulary"):
        raise edgepeft.ConfigError(
            f"{technique} needs an hf-classifier student, not {type(model).__name__}",
            where=f"[[techniques]] {technique}",
            fix='Remove the technique, or use model = "hf-classifier"',
        )
    return model
