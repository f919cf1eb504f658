"""The bundle's README.md: how an app developer loads the model and runs it with the matching pre- and
post-processing. The loading code comes from the backend (:meth:`Backend.app_snippet`); a backend without
one gets a generic section that names no runtime's API."""

from __future__ import annotations

from typing import Any

from edgepeft.api.backend import Backend, BundleFacts, TensorSpec
from edgepeft.api.tasks import Head, Signature
from edgepeft.artifacts.manifest import Manifest


def _plus(value: float) -> str:
    """`+ 3` or `- 3`, to write `x + z` formulas without `+ -3`."""
    return f"+ {value:g}" if value >= 0 else f"- {-value:g}"


def bundle_facts(manifest: Manifest) -> BundleFacts:
    """What a bundle's ``manifest.json`` says an app developer's code needs."""
    model = manifest.model
    return BundleFacts(
        model_file=model.file,
        backend=model.backend,
        precision=model.precision,
        threads=model.threads,
        input_layout=model.input_layout,
        inputs=tuple(TensorSpec(t.name, t.shape, t.dtype, t.quantization) for t in manifest.inputs),
        outputs=tuple(TensorSpec(t.name, t.shape, t.dtype, t.quantization) for t in manifest.outputs),
        preprocessing=manifest.preprocessing,
        heads=tuple(Head.from_dict(h.model_dump()) for h in manifest.heads),
        labels=tuple(manifest.labels),
    )


def app_readme(manifest: Manifest, backend: Backend) -> str:
    """How to load the model and run it with the matching pre- and post-processing."""
    facts = bundle_facts(manifest)
    inp, out, pre = facts.inputs[0], facts.outputs[0], facts.preprocessing
    in_q, out_q = inp.quantization, out.quantization
    lines = [
        f"# {manifest.name}",
        "",
        f"{facts.backend} model `{facts.model_file}` ({facts.precision}), built by edgepeft for the "
        f"`{manifest.device.name}` profile. `edgepeft verify .` checks every file and re-runs the samples.",
        "",
        "## Input",
        f"- `{inp.name}`: shape {inp.shape}, {inp.dtype}, layout {facts.input_layout}",
    ]
    if "fields" in pre:
        lines += _field_inputs(pre)
    elif "tokenizer_folder" in pre:
        lines += _text_inputs(pre, inp.shape)
    else:
        lines.append(
            f"- preprocessing: {pre.get('input', 'raw input')} -> `x = raw * {pre.get('scale', 1):g} "
            f"{_plus(pre.get('offset', 0))}` (float32)"
        )
    if in_q:
        lines.append(
            f"- the model takes int8: `q = clamp(round(x / {in_q['scale']:.8g}) {_plus(in_q['zero_point'])}, "
            "-128, 127)`"
        )
    lines += ["", "## Output", f"- `{out.name}`: shape {out.shape}, {out.dtype}"]
    if out_q:
        lines.append(f"- dequantize: `score = (q {_plus(-out_q['zero_point'])}) * {out_q['scale']:.8g}`")
    if facts.classifier:
        lines += ["- class = argmax of the scores; names in `labels.txt` (one per line, in class order)", ""]
    else:
        lines += [*_head_outputs(facts.heads), ""]
    if "tokenizer_folder" in pre:
        lines += [*_tokenize(pre), ""]
    lines.append((backend.app_snippet(facts) or generic_snippet(facts)).rstrip("\n"))
    lines += ["", "`samples.json` holds a few inputs with the outputs this exact file produced.", ""]
    return "\n".join(lines) + "\n"


def generic_snippet(facts: BundleFacts) -> str:
    """The README's loading section for a backend that declares none: what to feed and what to read."""
    inp, out = facts.inputs[0], facts.outputs[0]
    return "\n".join(
        [
            "## Load it",
            f"Open `{facts.model_file}` with the runtime of the `{facts.backend}` backend, with {facts.threads} "
            f"thread{'s' if facts.threads != 1 else ''} as the device profile sets. For each call:",
            f"1. build `{inp.name}` as described under Input: shape {inp.shape}, {inp.dtype}, "
            f"layout {facts.input_layout};",
            "2. run the model;",
            f"3. read `{out.name}` (shape {out.shape}, {out.dtype}) as described under Output.",
        ]
    )


def _text_inputs(pre: dict[str, Any], shape: list[int | str]) -> list[str]:
    """How a text becomes the model's input: the bundled tokenizer, its length and pad id, float32 ids."""
    length, pad = pre["max_length"], pre["pad_token_id"]
    case = {True: "; it lowercases the text itself", False: "; it keeps the case (do not lowercase)"}
    rows = shape[0] if isinstance(shape[0], int) else 1
    feed = f"- feed the ids as float32, one row of {length} per text, shape [{rows}, {length}]"
    feed += f": exactly {rows} texts per call (pad with copies of the last)" if rows > 1 else " for one text"
    return [
        f"- text: tokenize with the bundled tokenizer in `{pre['tokenizer_folder']}/` (the `{pre['tokenizer']}` "
        f"tokenizer the model was trained with), special tokens added{case.get(pre.get('lowercase'), '')}",
        f"- truncate to {length} tokens and pad to {length} with the pad id {pad} (on the right)",
        feed,
    ]


def _tokenize(pre: dict[str, Any]) -> list[str]:
    """Python that turns ``text`` into the model's input ``x`` exactly as training did."""
    length, pad, folder = pre["max_length"], pre["pad_token_id"], pre["tokenizer_folder"]
    if "tokenizer.json" not in pre.get("tokenizer_files", []):
        return [
            "## Tokenize (Python, transformers)",
            "```python",
            "import numpy as np",
            "from transformers import AutoTokenizer",
            "",
            f"tokenizer = AutoTokenizer.from_pretrained('{folder}')",
            f"ids = tokenizer([text], max_length={length}, truncation=True,",
            "                padding='max_length', padding_side='right')['input_ids']",
            f"x = np.array(ids, dtype=np.float32)  # shape [1, {length}]",
            "```",
        ]
    return [
        "## Tokenize (Python, tokenizers)",
        "```python",
        "import numpy as np",
        "from tokenizers import Tokenizer",
        "",
        f"tokenizer = Tokenizer.from_file('{folder}/tokenizer.json')",
        f"tokenizer.enable_truncation(max_length={length})",
        f"tokenizer.enable_padding(length={length}, pad_id={pad}, pad_token=tokenizer.id_to_token({pad}))",
        f"x = np.array([tokenizer.encode(text).ids], dtype=np.float32)  # shape [1, {length}]",
        "```",
    ]


def _field_inputs(pre: dict[str, Any]) -> list[str]:
    """How to build a row of categorical fields: each id column holds its value's index in the field's
    vocabulary (0 for a value the vocabulary lacks), each multi-hot block 0/1 per name."""
    lines = ["- one row per candidate; columns, in order (as float32):"]
    for f in pre["fields"]:
        if f.get("multi_hot"):
            lines.append(
                f"  - {f['column']}..{f['column'] + f['cardinality'] - 1}: `{f['name']}`, 1.0 for each of the "
                "item's values, in the order of `manifest.json` preprocessing.multi_hot"
            )
        else:
            lines.append(
                f"  - {f['column']}: `{f['name']}`, the value's index in preprocessing.vocabularies.{f['name']} "
                f"({f['cardinality']:,} entries; 0 = a value not seen in training)"
            )
    return lines


def _head_outputs(heads: tuple[Head, ...]) -> list[str]:
    """What each output column means, head by head."""
    meaning = {
        "regression": "the predicted value",
        "binary": "a logit: probability = 1 / (1 + exp(-logit)), positive when above 0",
        "classification": "class scores: class = argmax",
    }
    return [
        f"- column{'s' if columns.stop - columns.start > 1 else ''} {columns.start}"
        + (f"..{columns.stop - 1}" if columns.stop - columns.start > 1 else "")
        + f": `{head.name}` ({head.kind}), {meaning[head.kind]}"
        for head, columns in Signature((), heads).columns()
    ]
