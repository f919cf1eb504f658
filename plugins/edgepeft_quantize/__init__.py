"""Technique plugin ``quantize``: quantization-aware fine-tuning with torchao's PT2E flow.

The trained student is captured with ``torch.export`` and prepared with ``prepare_qat_pt2e``: every conv
and linear layer then trains through int8 fake quantization (weights per output channel, symmetric;
activations per tensor; batch norm folded into the conv as it will be at export). After fine-tuning, the
float weights, now robust to int8 rounding, are copied back into the student, which keeps its
architecture. Export it with ``--precision int8``: the ONNX and TFLite backends quantize it (calibrated
on training rows) with a smaller accuracy loss than the same student without this stage.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("edgepeft.quantize")


class QuantizeOptions(StrictModel):
    epochs: int = Field(2, ge=1, description="Quantization-aware fine-tuning epochs (with the recipe's losses).")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate: small, the weights only need to adapt.")


def fake_quantized(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A trainable copy of ``model`` whose convs and linears run through int8 fake quantization; its
    ``state_dict`` holds the model's own keys (the float weights) plus the quantizers' state."""
    import torch

    edgepeft.quiet_loggers()
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torch import nn
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config(is_qat=True))
    batch = torch.export.Dim("batch")
    graph = torch.export.export(model.train(), (example,), dynamic_shapes=({0: batch},)).module()
    prepared = prepare_qat_pt2e(graph, quantizer)

    class FakeQuantized(nn.Module):
        """Switches the captured graph between training and evaluation the way PT2E graphs need."""

        def __init__(self) -> None:
            super().__init__()
            self.graph = prepared

        def train(self, mode: bool = True) -> FakeQuantized:
            self.training = mode
            (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.graph)
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.graph(x)

    return FakeQuantized()


class Quantize(Technique):
    name = "quantize"
    description = "quantization-aware fine-tuning (torchao PT2E int8 fake quantization); export with int8"
    Options = QuantizeOptions
    options: QuantizeOptions
    example_options: ClassVar[dict[str, Any]] = {"epochs": 1}
    requires = ("torchao",)
    install_hint = "pip install 'edgepeft[compress]'"

    def compress(self, model: nn.Module, ctx: edgepeft.TrainContext) -> Compressed:
        import torch

        example = torch.from_numpy(ctx.data.train.x[:4])
        try:
            fake = fake_quantized(model.cpu(), example)
        except Exception as exc:
            raise edgepeft.TrainingError(
                f"the student cannot be prepared for quantization-aware training: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}",
                where="techniques: quantize",
                fix="Remove the quantize stage; export with --precision int8 quantizes after training instead",
            ) from exc
        result = ctx.finetune(fake, phase=self.name, epochs=self.options.epochs, lr=self.options.lr)
        trained = fake.graph.state_dict()
        model.load_state_dict({key: trained[key] for key in model.state_dict()})
        model.eval()
        log.info("quantization-aware fine-tuning: validation accuracy %.4f under int8", result.best_val_score)
        return Compressed(model, report={"fake_quantized_val_accuracy": result.best_val_score})


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Quantize)
