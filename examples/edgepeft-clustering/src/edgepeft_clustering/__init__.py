"""Plugin ``clustering``, technique ``cluster``: weight clustering (weight sharing), as in TF Model Optimization.

The weights of each conv and linear layer are grouped by 1-D k-means into ``clusters`` centroids; every
weight is replaced by its centroid. Fine-tuning then keeps each weight's assignment fixed and trains only
the centroids (a centroid's gradient is the sum over its weights, TF-MOT's default aggregation), so each
layer ends with at most ``clusters`` distinct values and an unchanged architecture.

What it buys, honestly: the exported file keeps its size (every weight is still a float32) and a dense
runtime is exactly as fast. The file compresses far better, though (a zipped bundle, an app download), and
formats with weight palettes (4-bit indices into 16 values) can store it in about an eighth of the space.
"""

from __future__ import annotations

import fnmatch
import gzip
import logging
from typing import TYPE_CHECKING, Literal

from pydantic import Field

import edgepeft
from edgepeft import Compressed, StrictModel, Technique

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch
    from torch import nn

log = logging.getLogger("edgepeft.cluster")

KMEANS_ITERATIONS = 100
NOTE = (
    "clustering does not shrink the exported file (each weight is still stored as a float32) nor speed a dense "
    "runtime; it makes the file compress far better (see gzip_ratio_after) and suits palettized formats"
)


class ClusterOptions(StrictModel):
    clusters: int = Field(16, ge=2, le=256, description="Distinct weight values per layer (16: 4-bit indices).")
    layers: list[str] = Field(["*"], min_length=1, description="Module-name patterns (fnmatch) to cluster.")
    min_weights: int = Field(1024, ge=1, description="Leave layers with fewer weights alone (they gain little).")
    init: Literal["kmeans++", "linear"] = Field(
        "kmeans++", description="Initial centroids: k-means++ sampling, or evenly spaced from min to max weight."
    )
    seed: int | None = Field(None, description="Seed of the k-means++ sampling (default: the recipe's seed).")
    epochs: int = Field(2, ge=0, description="Fine-tuning epochs of the shared weights (with the recipe's losses).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate of the fine-tuning.")


class Cluster(Technique):
    name = "cluster"
    description = "weight clustering (k-means weight sharing): the file compresses far better; same size and speed"
    Options = ClusterOptions
    options: ClusterOptions

    def compress(self, model: nn.Module, ctx: edgepeft.TrainContext) -> Compressed | None:
        import torch

        model = model.cpu().eval()
        targets, skipped = self._layers(model)
        if not targets:
            log.warning(
                "cluster: no conv or linear layer matches %s with %d weights or more; the model is unchanged",
                self.options.layers,
                self.options.min_weights,
            )
            return None
        generator = torch.Generator().manual_seed(ctx.seed if self.options.seed is None else self.options.seed)
        before = _weight_bytes(targets.values())
        for module in targets.values():
            indices = _kmeans(module.weight.detach().flatten(), self.options.clusters, self.options.init, generator)
            _share_weights(module, indices.reshape(module.weight.shape), self.options.clusters)
        ctx.finetune(model, phase=self.name, epochs=self.options.epochs, lr=self.options.lr)
        for module in targets.values():
            _unshare_weights(module)
        after = _weight_bytes(targets.values())
        distinct = {name: int(module.weight.unique().numel()) for name, module in targets.items()}
        packing = _compressibility(before, after)
        log.info(
            "cluster: %d layers, at most %d distinct values each; gzip ratio %.2f -> %.2f",
            len(targets),
            max(distinct.values()),
            packing["gzip_ratio_before"],
            packing["gzip_ratio_after"],
        )
        return Compressed(
            model,
            report={
                "layers_clustered": list(targets),
                "layers_skipped": skipped,
                "distinct_values": distinct,
                "distinct_values_max": max(distinct.values()),
                **packing,
                "note": NOTE,
            },
        )

    def _layers(self, model: nn.Module) -> tuple[dict[str, nn.Module], list[str]]:
        """The conv and linear layers matching ``layers`` with at least ``min_weights`` weights, and those
        that match but are too small."""
        from torch import nn

        targets: dict[str, nn.Module] = {}
        skipped: list[str] = []
        for name, module in model.named_modules():
            if not isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
                continue
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.options.layers):
                continue
            if module.weight.numel() < self.options.min_weights:
                skipped.append(name)
            else:
                targets[name] = module
        return targets, skipped


def _kmeans(values: torch.Tensor, clusters: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """1-D k-means (Lloyd's iterations to convergence): each value's cluster, numbered in ascending order."""
    import torch

    if init == "linear":
        centroids = torch.linspace(float(values.min()), float(values.max()), clusters)
    else:
        centroids = _kmeans_plus_plus(values, clusters, generator)
    indices = _nearest(values, centroids)
    for _ in range(KMEANS_ITERATIONS):
        centroids = _cluster_means(values, indices, centroids)
        nearest = _nearest(values, centroids)
        if torch.equal(nearest, indices):
            break
        indices = nearest
    return indices


def _kmeans_plus_plus(values: torch.Tensor, clusters: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted k-means++ seeds: each next one drawn with probability proportional to the squared distance to
    the nearest seed so far (fewer seeds when the values have fewer distinct points)."""
    import torch

    first = torch.randint(len(values), (1,), generator=generator)
    seeds = values[first]
    distance = (values - seeds[0]) ** 2
    while len(seeds) < clusters and distance.sum() > 0:
        chosen = values[torch.multinomial(distance, 1, generator=generator)]
        seeds = torch.cat([seeds, chosen])
        distance = torch.minimum(distance, (values - chosen) ** 2)
    return seeds.sort().values


def _nearest(values: torch.Tensor, sorted_centroids: torch.Tensor) -> torch.Tensor:
    """Index of each value's nearest centroid (in 1-D: the interval between midpoints it falls in)."""
    import torch

    return torch.bucketize(values, (sorted_centroids[1:] + sorted_centroids[:-1]) / 2)


def _cluster_means(values: torch.Tensor, indices: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """The mean of each cluster's values; an empty cluster keeps its ``fallback`` value."""
    import torch

    sums = torch.zeros_like(fallback).index_add_(0, indices, values)
    counts = torch.bincount(indices, minlength=len(fallback))
    return torch.where(counts > 0, sums / counts.clamp(min=1), fallback)


def _share_weights(module: nn.Module, indices: torch.Tensor, clusters: int) -> None:
    """Make ``module.weight`` the trainable centroids gathered by fixed ``indices`` (a parametrization); each
    centroid starts as the mean of its weights."""
    import torch
    from torch import nn
    from torch.nn.utils import parametrize

    class SharedWeights(nn.Module):
        """weight = centroids[indices]: only the ``clusters`` centroids are parameters."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("indices", indices)

        def forward(self, centroids: torch.Tensor) -> torch.Tensor:
            return centroids[self.indices]

        def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
            zeros = torch.zeros(clusters, dtype=weight.dtype, device=weight.device)
            return _cluster_means(weight.flatten(), self.indices.flatten(), zeros)

    parametrize.register_parametrization(module, "weight", SharedWeights(), unsafe=True)


def _unshare_weights(module: nn.Module) -> None:
    """Make ``module.weight`` a plain parameter again, holding the shared values."""
    from torch.nn.utils import parametrize

    module.parametrizations.weight.original.grad = None  # the centroids' gradient would not fit the weight
    parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


def _weight_bytes(modules: Iterable[nn.Module]) -> bytes:
    """The weights of ``modules`` as little-endian float32 bytes, one layer after the other."""
    return b"".join(m.weight.detach().cpu().float().numpy().astype("<f4").tobytes() for m in modules)


def _compressibility(before: bytes, after: bytes) -> dict[str, int | float]:
    """Raw and gzip-compressed (level 9) sizes of the clustered weights before and after, and their ratios."""
    packed_before = len(gzip.compress(before, compresslevel=9, mtime=0))
    packed_after = len(gzip.compress(after, compresslevel=9, mtime=0))
    return {
        "weight_bytes": len(after),
        "gzip_bytes_before": packed_before,
        "gzip_bytes_after": packed_after,
        "gzip_ratio_before": len(before) / packed_before,
        "gzip_ratio_after": len(after) / packed_after,
    }


@edgepeft.hookimpl
def edgepeft_register_techniques(register: edgepeft.Registrar) -> None:
    register(Cluster)
