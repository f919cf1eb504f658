"""samples.json: held-out examples with the exported model's outputs on exactly that batch."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgepeft.api.tasks import Head

SAMPLES = 8


def samples_json(x: np.ndarray, y: np.ndarray, outputs: np.ndarray, heads: tuple[Head, ...], layout: str) -> str:
    """Held-out examples, model-ready (after preprocessing), with the exported model's outputs on exactly
    this batch (so `edgepeft verify` can re-run it and expect the same numbers)."""
    classifier = len(heads) == 1 and heads[0].kind == "classification"

    def label(i: int) -> Any:
        if classifier:
            return heads[0].labels[int(y[i])]
        return {head.name: float(y[i, h]) for h, head in enumerate(heads)}

    rows = [
        {
            "index": i,
            "label": label(i),
            "input": np.round(x[i].astype(np.float64), 7).tolist(),
            "expected_output": np.round(outputs[i].astype(np.float64), 7).tolist(),
            **({"expected_top1": int(outputs[i].argmax())} if classifier else {}),
        }
        for i in range(len(x))
    ]
    note = f"inputs are preprocessed float32 in {layout} layout; the model's own input dtype is in manifest.json"
    return json.dumps({"note": note, "samples": rows}, indent=1) + "\n"
