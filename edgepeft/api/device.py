"""Device profiles: what a target device is, which runtimes it has, and the budgets a model must meet."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from edgepeft.errors import ConfigError
from edgepeft.host.registry import Registry
from edgepeft.util.validation import StrictModel, config_error, read_toml, toml_line

Precision = Literal["fp32", "fp16", "int8", "int8-dynamic"]
"""``int8``: weights and activations in int8, calibrated on training inputs (TFLite: int8 input and output
too); ``int8-dynamic``: int8 weights, activations quantized on the fly, float input and output."""


class Hardware(StrictModel):
    platform: Literal["android", "ios", "linux", "windows", "macos"]
    arch: Literal["arm64", "armv7", "x86_64"]
    cores: int = Field(gt=0)
    memory_mb: int = Field(gt=0)
    accelerator: Literal["none", "gpu", "npu", "cuda"] = "none"
    relative_speed: float = Field(
        gt=0,
        description="Device speed relative to the reference host (1.0 = the same); "
        "estimated device latency = host latency / relative_speed.",
    )


class Runtime(StrictModel):
    backends: list[str] = Field(min_length=1, description="Backends to use, most preferred first.")
    precisions: list[Precision] = Field(min_length=1, description="Precisions the device runs, preferred first.")
    threads: int = Field(1, gt=0)
    input_layout: Literal["NCHW", "NHWC"] = "NCHW"


class Budgets(StrictModel):
    batch_size: int = Field(1, gt=0, description="Batch size at which latency is measured.")
    max_size_mb: float | None = Field(None, gt=0)
    p95_latency_ms: float | None = Field(None, gt=0)
    peak_memory_mb: float | None = Field(None, gt=0)
    min_accuracy_retention: float | None = Field(None, gt=0, le=1, description="Student / teacher test metric.")


class ParityThresholds(StrictModel):
    """What an export must meet on the held-out test split; unset keys take the precision's default."""

    min_top1_agreement: float | None = Field(None, gt=0, le=1)
    max_abs_diff: float | None = Field(None, gt=0, description="Largest output difference; none for int8.")
    max_metric_drop: float | None = Field(
        None, ge=0, description="How much each head's main metric (accuracy, AUC, RMSE) may worsen vs PyTorch."
    )


DEFAULT_PARITY: dict[str, ParityThresholds] = {
    "fp32": ParityThresholds(min_top1_agreement=0.999, max_abs_diff=1e-3, max_metric_drop=0.001),
    "fp16": ParityThresholds(min_top1_agreement=0.995, max_abs_diff=0.05, max_metric_drop=0.005),
    "int8": ParityThresholds(min_top1_agreement=0.99, max_metric_drop=0.01),
    "int8-dynamic": ParityThresholds(min_top1_agreement=0.99, max_metric_drop=0.01),
}


def parity_thresholds(overrides: dict[str, ParityThresholds], precision: str) -> ParityThresholds:
    """The defaults for ``precision`` with the profile's (or command's) overrides on top."""
    base = DEFAULT_PARITY[precision].model_dump()
    override = overrides.get(precision)
    if override is not None:
        base.update(override.model_dump(exclude_none=True))
    return ParityThresholds(**base)


class DeviceProfile(StrictModel):
    """A validated device profile, with everything it inherits through ``extends`` merged in."""

    name: str
    description: str
    extends: str | None = None
    hardware: Hardware
    runtime: Runtime
    budgets: Budgets = Budgets()
    parity: dict[Precision, ParityThresholds] = Field(
        default_factory=dict, description="Per-precision parity overrides: [parity.int8] min_top1_agreement = 0.98"
    )
    source: str = Field("", exclude=True)

    @model_validator(mode="after")
    def _budgets_can_be_met(self) -> DeviceProfile:
        memory = self.budgets.peak_memory_mb
        if memory is not None and memory > self.hardware.memory_mb:
            raise ValueError(
                f"budgets.peak_memory_mb ({memory:g}) exceeds the device's memory ({self.hardware.memory_mb} MB): "
                "the budget can never be met"
            )
        return self

    def sha256(self) -> str:
        """Hash of the resolved profile, recorded in bundles so a later change to it is visible."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_profile(name: str, registry: Registry[Path]) -> DeviceProfile:
    """The named profile with its ``extends`` chain merged (child keys override parent keys)."""
    chain: list[tuple[Path, dict[str, Any], str]] = []
    current: str | None = name
    where: str | None = None
    while current is not None:
        path = registry.get(current, where=where)
        if any(p == path for p, _, _ in chain):
            cycle = " -> ".join([*(p.stem for p, _, _ in chain), current])
            raise ConfigError(
                f"extends: profiles extend each other in a cycle ({cycle})", where=where, fix="Break the cycle"
            )
        data, text = read_toml(path)
        for reserved in ("name", "source"):
            if reserved in data:
                raise ConfigError(
                    f"{reserved}: unknown key",
                    where=f"{path}:{toml_line(text, [reserved])}",
                    fix="Remove it; a profile's name is its file name",
                )
        chain.append((path, data, text))
        parent = data.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise ConfigError(
                "extends: must be a profile name (a string)", where=f"{path}:{toml_line(text, ['extends'])}"
            )
        where = f"{path}:{toml_line(text, ['extends'])}"
        current = parent
    merged: dict[str, Any] = {}
    for _, data, _ in reversed(chain):
        merged = _merge(merged, data)
    merged["name"] = name
    merged["extends"] = chain[0][1].get("extends")
    merged["source"] = str(chain[0][0])
    return _validate(merged, chain)


def _validate(merged: dict[str, Any], chain: list[tuple[Path, dict[str, Any], str]]) -> DeviceProfile:
    """Validate the merged profile; a problem is reported in the file that wrote the key (else the child)."""
    try:
        return DeviceProfile.model_validate(merged)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        owner = next((c for c in chain if _has_key(c[1], loc)), chain[0])
        raise config_error(exc, DeviceProfile, owner[0], owner[2]) from None


def _has_key(data: dict[str, Any], loc: tuple[str | int, ...]) -> bool:
    node: Any = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        else:
            return False
    return True
