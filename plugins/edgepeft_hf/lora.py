"""Technique ``lora``: fine-tunes a model through low-rank adapters on chosen linear layers (Hu et al., 2021),
the rest frozen but for ``train_also`` (the new classification head), reports the trainable share, and after
training merges the adapters into the weights (``merge = true``) or keeps them as a recorded architecture
change."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, PositiveFloat, PositiveInt

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

if TYPE_CHECKING:
    import torch

log = logging.getLogger("edgepeft.lora")


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
