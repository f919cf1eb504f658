"""edgepeft.capture: intermediate outputs by module name, and a feature-distillation technique built on it
(the example of docs/hooks.md) trained and exported through the parity gate."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

import edgepeft
from edgepeft.testing import technique_round_trip


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_outputs_are_kept_by_name_at_every_pass_with_their_graph():
    model, x = mlp(), torch.randn(5, 4)
    with edgepeft.capture(model, ["0", "1"]) as inner:
        out = model(x)
        assert torch.equal(inner["0"], model[0](x)) and torch.equal(inner["1"], torch.relu(model[0](x)))
        inner["1"].sum().backward()
        assert model[0].weight.grad is not None
        model(x[:2])
        assert inner["0"].shape == (2, 8)
    model(x)  # the hooks are gone: nothing changes
    assert inner["0"].shape == (2, 8) and out.shape == (5, 3)


def test_a_tuple_output_keeps_its_first_element():
    class Pair(nn.Module):
        def forward(self, x):
            return x * 2, x * 3

    model = nn.Sequential(Pair())
    with edgepeft.capture(model, ["0"]) as inner:
        model[0](torch.ones(1, 2))
    assert torch.equal(inner["0"], torch.full((1, 2), 2.0))


def test_an_unknown_module_is_a_config_error_with_suggestions():
    model = nn.Sequential(OrderedDict(encoder=nn.Linear(4, 8), head=nn.Linear(8, 3)))
    with pytest.raises(edgepeft.ConfigError, match=r"no module named 'encodr'.*Did you mean 'encoder'"):
        edgepeft.capture(model, ["head", "encodr"])
    assert not model.head._forward_hooks  # nothing is left hooked


def test_follow_moves_the_hooks_to_a_swapped_model_or_module():
    model, x = mlp(), torch.randn(5, 4)
    inner = edgepeft.capture(model, ["2"])
    model(x)
    assert inner.follow(model) and "2" in inner
    model[2] = nn.Linear(8, 3)  # as lowrank replaces a layer
    assert not inner.follow(model) and "2" not in inner
    assert torch.equal(model(x), inner["2"]) and inner.follow(model)
    other = nn.Sequential(nn.Linear(4, 3))  # as quantize swaps the model for one without that module
    assert not inner.follow(other)
    other(x)
    assert inner.follow(other) and dict(inner) == {}
    model(x)
    assert dict(inner) == {}  # the first model is no longer hooked
    inner.close()


def test_nothing_is_kept_while_torch_export_traces():
    model = mlp().eval()
    with edgepeft.capture(model, ["0"]) as inner:
        torch.export.export(model, (torch.randn(2, 4),))
    assert dict(inner) == {}


def width(model: nn.Module, layer: str, x: torch.Tensor) -> int:
    """The width of ``model``'s output at module ``layer`` (flattened), on the device the model is on."""
    with torch.no_grad(), edgepeft.capture(model, [layer]) as inner:
        model.eval()(x.to(next(model.parameters()).device))  # fit puts a model it trains back in training mode
    return inner[layer].flatten(1).shape[1]


class MatchFeaturesOptions(edgepeft.StrictModel):
    student_layer: str = Field("0", description="The student module whose output learns the teacher's.")
    teacher_layer: str = Field("0", description="The teacher module it learns from.")
    weight: float = Field(1.0, ge=0, description="Weight of the feature term.")


class MatchFeatures(edgepeft.Technique):
    """The student's output at one module learns the teacher's at another (mean squared error, through a
    learned projection when their widths differ)."""

    name = "match-features"
    Options = MatchFeaturesOptions
    options: MatchFeaturesOptions

    def setup(self, ctx: edgepeft.TrainContext) -> None:
        if ctx.teacher is None:
            raise edgepeft.ConfigError("match-features needs a teacher", fix="Add a [teacher] section to the recipe")
        s_layer, t_layer = self.options.student_layer, self.options.teacher_layer
        probe = torch.from_numpy(ctx.data.train.x[:2])
        widths = width(ctx.model, s_layer, probe), width(ctx.teacher, t_layer, probe)
        self.projection = nn.Linear(*widths).to(ctx.device) if widths[0] != widths[1] else None
        self.ctx, self.teacher = ctx, ctx.teacher.to(ctx.device).eval()
        self.student = edgepeft.capture(ctx.model, [s_layer])  # open across steps: each forward pass refills it

    def trainable(self) -> list[nn.Parameter]:
        return list(self.projection.parameters()) if self.projection is not None else []

    def loss_terms(self, terms, batch, logits):
        s_layer, t_layer = self.options.student_layer, self.options.teacher_layer
        if not self.student.follow(self.ctx.model) or s_layer not in self.student:
            return terms  # a compression stage swapped the model (or it lacks the module): none this step
        student = self.student[s_layer].flatten(1).float()
        if self.projection is not None:
            student = self.projection(student)
        with torch.no_grad(), edgepeft.capture(self.teacher, [t_layer]) as t:
            self.teacher(batch.x)  # the rows the student saw, augmented ones included
        return {**terms, "features": F.mse_loss(student, t[t_layer].flatten(1).float()) * self.options.weight}


def test_a_feature_distillation_technique_trains_and_exports(manager, tmp_path):
    seen: list[set[str]] = []

    class Spy(MatchFeatures):
        def loss_terms(self, terms, batch, logits):
            out = super().loss_terms(terms, batch, logits)
            seen.append(set(out))
            return out

    technique = Spy(MatchFeaturesOptions(student_layer="0", teacher_layer="1"))
    trip = technique_round_trip(technique, manager, tmp_path)
    assert technique.projection is not None  # flattened conv features -> the hidden layer: other widths
    assert seen and all(terms == {"task", "features"} for terms in seen)
    assert trip.parity.passed


def test_the_technique_follows_a_swapped_student(tiny_data):
    from edgepeft.train.loop import fit

    def digits_mlp() -> nn.Sequential:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    seen: list[set[str]] = []

    class Spy(MatchFeatures):
        def loss_terms(self, terms, batch, logits):
            out = super().loss_terms(terms, batch, logits)
            seen.append(set(out))
            return out

    torch.manual_seed(0)
    student, ctx = digits_mlp(), edgepeft.TrainContext(data=tiny_data, teacher=digits_mlp(), batch_size=256, seed=0)
    technique = Spy(MatchFeaturesOptions(student_layer="2", teacher_layer="2"))
    ctx.model = student
    technique.setup(ctx)
    assert technique.projection is None
    fit(student, ctx, phase="student", epochs=1, lr=0.01, techniques=[technique])
    steps = len(seen)
    student[2] = nn.ReLU()  # as a compression stage replacing a module would (lowrank)
    fit(student, ctx, phase="student", epochs=1, lr=0.01, techniques=[technique])
    assert all(terms == {"task", "features"} for terms in seen[:steps])
    assert seen[steps] == {"task"} and all(terms == {"task", "features"} for terms in seen[steps + 1 :])
    del seen[:]
    fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), ctx, phase="student", epochs=1, lr=0.01, techniques=[technique])
    assert seen and all(terms == {"task"} for terms in seen)  # no module "2": the term waits for a model with one
