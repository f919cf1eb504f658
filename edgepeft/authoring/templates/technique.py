"""The technique kind: label smoothing as a loss term."""

from edgepeft.authoring.templates.kind import KindTemplate

TECHNIQUE_PLUGIN = '''\
"""Technique plugin ``$name``: label smoothing, as a loss term.

Each training target keeps ``1 - smoothing`` on its true class and spreads ``smoothing`` evenly over all
classes, which keeps the student from growing over-confident. The total equals PyTorch's
``cross_entropy(logits, labels, label_smoothing=smoothing)``.

What to change: the options (the recipe's keys, validated by pydantic) and :meth:`loss_terms`. A
technique can also prepare before the first step (``setup(ctx)``, e.g. cache teacher outputs) or change
the trained student (``compress(model, ctx)``: prune, factorize, quantize). A ``compress`` that changes
the architecture returns ``edgepeft.Compressed(model, record=...)`` and implements the classmethod
``rebuild(model, record)``, so that a saved student is rebuilt before its weights load. See docs/hooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import edgepeft
from pydantic import Field

if TYPE_CHECKING:
    import torch


class $options_name(edgepeft.StrictModel):
    smoothing: float = Field(0.1, ge=0, lt=1, description="Share of each target spread evenly over all classes.")


class $class_name(edgepeft.Technique):
    name = "$name"
    description = "label smoothing: each target spreads `smoothing` evenly over all classes"
    Options = $options_name
    options: $options_name

    def loss_terms(
        self, terms: dict[str, torch.Tensor], batch: edgepeft.Batch, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        import torch.nn.functional as F

        smoothing = self.options.smoothing
        uniform = -F.log_softmax(logits, dim=1).mean()
        return {**terms, "task": terms["task"] * (1 - smoothing), "smoothing": uniform * smoothing}


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register($class_name)
'''

TECHNIQUE_TESTS = '''\
"""The ``$name`` technique: its loss term, and the parity gate after training with it."""

import edgepeft
import pytest
import torch
import torch.nn.functional as F
from edgepeft.testing import technique_round_trip

from edgepeft_$module import $class_name


def test_plugin_is_found_through_its_entry_point(manager):
    assert manager.info["$name"].distribution == "edgepeft-$name"
    assert manager.techniques.entry("$name").plugin == "$name"


def _loss_terms(smoothing, logits, labels):
    technique = $class_name($class_name.Options(smoothing=smoothing))
    batch = edgepeft.Batch(x=torch.zeros(len(labels), 1), y=labels, index=torch.arange(len(labels)))
    return technique.loss_terms({"task": F.cross_entropy(logits, labels)}, batch, logits)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_loss_is_cross_entropy_with_smoothed_labels(smoothing):
    logits, labels = torch.tensor([[4.0, 1.0, -2.0], [0.5, 0.0, 3.0]]), torch.tensor([0, 1])
    terms = _loss_terms(smoothing, logits, labels)
    assert set(terms) == {"task", "smoothing"}
    expected = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    assert sum(terms.values()).item() == pytest.approx(expected.item())


def test_smoothing_raises_the_loss_of_a_confident_prediction():
    logits, labels = torch.tensor([[6.0, 0.0, 0.0]]), torch.tensor([0])
    assert sum(_loss_terms(0.1, logits, labels).values()) > sum(_loss_terms(0.0, logits, labels).values())


def test_trained_student_passes_the_parity_gate(manager, tmp_path):
    trip = technique_round_trip($class_name($class_name.Options()), manager, tmp_path)
    assert trip.parity.top1_agreement >= 0.99
    assert trip.parameters_after == trip.parameters_before  # a loss term leaves the model as it is
'''

TECHNIQUE_USAGE = """\
Add it to a recipe's techniques; its options are keys beside `name`:

```toml
[[techniques]]
name = "$name"
smoothing = 0.1
```"""


TEMPLATE = KindTemplate(
    summary="label smoothing as a loss term",
    plugin=TECHNIQUE_PLUGIN,
    tests=TECHNIQUE_TESTS,
    usage=TECHNIQUE_USAGE,
    test_requirement="edgepeft[data,onnx]",
)
