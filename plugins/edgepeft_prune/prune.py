"""Technique ``prune``: remove whole channels and neurons, or zero single weights, then recover.

Structured pruning physically removes conv output channels and linear neurons ranked by an importance
criterion; torch-pruning's dependency graph keeps every coupled layer consistent (the next layer's
inputs, batch norms, depthwise convolutions, both sides of a residual add, a flatten into a linear
layer). It prunes to a channel ratio, a parameter count or a multiply-accumulate (MAC) count. The model's
output layer is never pruned. Unstructured magnitude pruning zeroes the smallest weights instead: it is
reported honestly as what it is, since zeros neither shrink an exported file nor speed a dense runtime.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

from .architecture import architecture, changes, macs_and_parameters, output_layers

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("edgepeft.prune")

MAX_ITERATIONS = 40
UNSTRUCTURED_NOTE = (
    "unstructured pruning only sets weights to zero: the exported file stores every weight, so it keeps its "
    "size, and a dense runtime multiplies the zeros too, so latency does not change. Use method = "
    '"structured" to make the model smaller and faster.'
)


class PruneOptions(StrictModel):
    method: Literal["structured", "unstructured"] = Field(
        "structured", description="structured: remove channels and neurons; unstructured: zero single weights."
    )
    ratio: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Fraction of channels (per layer, or overall with global_ranking) or of weights to remove.",
    )
    target_parameters: int | None = Field(None, gt=0, description="Structured: prune to at most this many parameters.")
    target_macs: int | None = Field(
        None, gt=0, description="Structured: prune to at most this many multiply-accumulates per example."
    )
    importance: Literal["l1", "l2", "bn-scale"] = Field(
        "l2", description="How channels are ranked: weight magnitude (L1/L2 norm) or batch-norm scale."
    )
    global_ranking: bool = Field(False, description="Rank channels across all layers instead of within each layer.")
    epochs: int = Field(3, ge=0, description="Recovery fine-tuning epochs after pruning (with the recipe's losses).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate of the recovery fine-tuning.")

    @model_validator(mode="after")
    def _one_goal(self) -> PruneOptions:
        goals = [k for k in ("ratio", "target_parameters", "target_macs") if getattr(self, k) is not None]
        if len(goals) != 1:
            raise ValueError(f"set exactly one of ratio, target_parameters, target_macs (got {goals or 'none'})")
        if self.method == "unstructured" and goals != ["ratio"]:
            raise ValueError("unstructured pruning takes a ratio (the fraction of weights to zero)")
        return self


class Prune(Technique):
    name = "prune"
    description = "structured channel/neuron pruning (dependency-aware) or unstructured magnitude pruning"
    Options = PruneOptions
    options: PruneOptions
    example_options: ClassVar[dict[str, Any]] = {"ratio": 0.5, "epochs": 1}
    requires = ("torch_pruning",)
    install_hint = "pip install 'edgepeft[compress]'"

    def compress(self, model: nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        import torch
        from torch import nn

        model = model.cpu().eval()
        example = torch.from_numpy(ctx.data.train.x[:2])
        before = macs_and_parameters(model, example)
        if self.options.method == "unstructured":
            return self._unstructured(model, ctx, example, before)
        batch_norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
        if self.options.importance == "bn-scale" and not any(isinstance(m, batch_norms) for m in model.modules()):
            raise edgepeft.ConfigError(
                'importance = "bn-scale" ranks channels by batch-norm scales, and this model has no batch norm',
                where="techniques: prune.importance",
                fix='Use importance = "l1" or "l2"',
            )
        shapes = architecture(model)
        with torch.no_grad():
            classes = model(example).shape[1]
        try:
            self._structured(model, example)
            outputs = model(example).shape
        except edgepeft.EdgepeftError:
            raise
        except Exception as exc:
            raise edgepeft.ConfigError(
                f"torch-pruning cannot prune this model: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                where="techniques: prune",
                fix='Use flatten/reshape instead of fixed view sizes in the model, or method = "unstructured"',
            ) from exc
        if tuple(outputs) != (len(example), classes):
            raise edgepeft.ConfigError(
                f"pruning changed the model's output from {classes} classes to shape {list(outputs)[1:]}: its output "
                "layer could not be told apart (e.g. a convolutional head or an operation after the last layer)",
                where="techniques: prune",
                fix="End the model with a linear or conv layer whose output is the logits, or use lowrank instead",
            )
        after = macs_and_parameters(model, example)
        log.info("pruned %s -> %s parameters, %s -> %s MACs", before[1], after[1], before[0], after[0])
        ctx.finetune(model, phase=self.name, epochs=self.options.epochs, lr=self.options.lr)
        return Compressed(
            model,
            record=changes(shapes, architecture(model)),
            report={"macs_before": before[0], "macs_after": after[0]},
        )

    def _structured(self, model: nn.Module, example: torch.Tensor) -> None:
        import torch_pruning as tp

        importance = {
            "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
            "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "bn-scale": tp.importance.BNScaleImportance,
        }[self.options.importance]()
        ratio = self.options.ratio
        steps = 1 if ratio is not None else MAX_ITERATIONS
        pruner = tp.pruner.MetaPruner(
            model,
            example,
            importance=importance,
            global_pruning=self.options.global_ranking,
            pruning_ratio=ratio if ratio is not None else 0.95,
            iterative_steps=steps,
            ignored_layers=output_layers(model, example),
        )
        for _ in range(steps):
            if ratio is None and self._target_met(model, example):
                return
            pruner.step()
        if ratio is None and self._target_met(model, example):
            return
        if ratio is None:
            macs, parameters = macs_and_parameters(model, example)
            raise edgepeft.ConfigError(
                f"pruning cannot reach the target: at 95% of channels removed the model still has {parameters:,} "
                f"parameters and {macs:,} MACs",
                where="techniques: prune",
                fix="Raise target_parameters / target_macs, or start from a smaller student",
            )

    def _target_met(self, model: nn.Module, example: torch.Tensor) -> bool:
        macs, parameters = macs_and_parameters(model, example)
        if self.options.target_parameters is not None:
            return parameters <= self.options.target_parameters
        return macs <= (self.options.target_macs or 0)

    def _unstructured(
        self, model: nn.Module, ctx: edgepeft.TrainContext, example: torch.Tensor, before: tuple[int, int]
    ) -> Compressed:
        from torch import nn
        from torch.nn.utils import prune

        outputs = set(output_layers(model, example))
        targets = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear) and m not in outputs]
        if not targets:
            raise edgepeft.ConfigError(
                "unstructured pruning found no conv or linear layer to prune besides the output layer",
                where="techniques: prune",
                fix="Remove the prune stage, or give the model hidden layers",
            )
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=self.options.ratio)
        ctx.finetune(model, phase=self.name, epochs=self.options.epochs, lr=self.options.lr)  # masks stay applied
        for module, attr in targets:
            prune.remove(module, attr)
        zeros = sum(int((m.weight == 0).sum()) for m, _ in targets)
        total = sum(m.weight.numel() for m, _ in targets)
        log.warning("%.1f%% of the prunable weights are zero; %s", 100 * zeros / total, UNSTRUCTURED_NOTE)
        return Compressed(
            model,
            report={
                "macs_before": before[0],
                "macs_after": before[0],
                "sparsity": zeros / total,
                "note": UNSTRUCTURED_NOTE,
            },
        )

    @classmethod
    def rebuild(cls, model: nn.Module, record: dict[str, Any]) -> nn.Module:
        """Give every pruned module its recorded sizes: attributes, then fresh tensors of the saved shapes."""
        import torch
        from torch import nn

        for name, attributes in record["modules"].items():
            module = model.get_submodule(name)  # load_model reports a failure here, naming the technique
            for attribute, value in attributes.items():
                setattr(module, attribute, tuple(value) if isinstance(value, list) else value)
        for name, shape in record["tensors"].items():
            owner_name, _, attribute = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            current = getattr(owner, attribute)
            fresh = torch.empty(shape, dtype=current.dtype)
            setattr(
                owner,
                attribute,
                nn.Parameter(fresh, current.requires_grad) if isinstance(current, nn.Parameter) else fresh,
            )
        return model
