"""What a bundle tells people: sample inputs with expected outputs, a README for the app developer, and an
HTML report (teacher vs student, latency distribution, budget verdict) with inline SVG charts."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

from edgepeft.api.tasks import Head, Signature, format_metric
from edgepeft.ship.profile import ProfileReport

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


def _plus(value: float) -> str:
    """`+ 3` or `- 3`, to write `x + z` formulas without `+ -3`."""
    return f"+ {value:g}" if value >= 0 else f"- {-value:g}"


def _quant(spec: dict[str, Any]) -> tuple[float, int] | None:
    q = spec.get("quantization")
    return (q["scale"], q["zero_point"]) if q else None


def app_readme(manifest: dict[str, Any]) -> str:
    """How to load the model and run it with the matching pre- and post-processing."""
    model, inp, out = manifest["model"], manifest["inputs"][0], manifest["outputs"][0]
    pre = manifest["preprocessing"]
    in_q, out_q = _quant(inp), _quant(out)
    heads = tuple(Head.from_dict(h) for h in manifest.get("heads", []))
    classifier = len(heads) <= 1 and all(h.kind == "classification" for h in heads)
    lines = [
        f"# {manifest['name']}",
        "",
        f"{model['backend']} model `{model['file']}` ({model['precision']}), built by edgepeft for the "
        f"`{manifest['device']['name']}` profile. `edgepeft verify .` checks every file and re-runs the samples.",
        "",
        "## Input",
        f"- `{inp['name']}`: shape {inp['shape']}, {inp['dtype']}, layout {model.get('input_layout', 'NCHW')}",
    ]
    if "fields" in pre:
        lines += _field_inputs(pre)
    elif "tokenizer_folder" in pre:
        lines += _text_inputs(pre, inp["shape"])
    else:
        lines.append(
            f"- preprocessing: {pre.get('input', 'raw input')} -> `x = raw * {pre.get('scale', 1):g} "
            f"{_plus(pre.get('offset', 0))}` (float32)"
        )
    if in_q:
        lines.append(f"- the model takes int8: `q = clamp(round(x / {in_q[0]:.8g}) {_plus(in_q[1])}, -128, 127)`")
    lines += ["", "## Output", f"- `{out['name']}`: shape {out['shape']}, {out['dtype']}"]
    if out_q:
        lines.append(f"- dequantize: `score = (q {_plus(-out_q[1])}) * {out_q[0]:.8g}`")
    if classifier:
        lines += ["- class = argmax of the scores; names in `labels.txt` (one per line, in class order)", ""]
    else:
        lines += [*_head_outputs(heads), ""]
    threads = manifest["device"]["profile"]["runtime"]["threads"]
    if "tokenizer_folder" in pre:
        lines += [*_tokenize(pre), ""]
    if model["backend"] == "tflite" and classifier:
        lines += _kotlin(inp, out, in_q, out_q, pre, threads, model["file"])
    elif model["backend"] == "tflite":
        lines += _kotlin_heads(inp, out, in_q, out_q, heads, threads, model["file"])
    elif model["backend"] == "onnx":
        lines += [
            "## Load it (Python, onnxruntime)",
            "```python",
            "import numpy as np, onnxruntime as ort",
            f"session = ort.InferenceSession('{model['file']}')",
            f"scores = session.run(None, {{'{inp['name']}': x.astype(np.float32)}})[0]  # x: preprocessed batch",
            "```",
        ]
    else:
        lines += [
            "## Load it (Python, PyTorch)",
            "```python",
            "import torch",
            f"module = torch.export.load('{model['file']}').module()  # only a file `edgepeft verify` vouched for",
            "scores = module(torch.from_numpy(x))  # x: preprocessed float32 batch",
            "```",
        ]
    lines += ["", "`samples.json` holds a few inputs with the outputs this exact file produced.", ""]
    return "\n".join(lines) + "\n"


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


def _litert_start(file: str, threads: int, math: list[str]) -> list[str]:
    """The opening of a Kotlin snippet: dependencies, imports (``kotlin.math`` names in ``math``), interpreter."""
    return [
        "## Load it on Android (Kotlin, LiteRT)",
        "```kotlin",
        '// build.gradle: implementation("com.google.ai.edge.litert:litert:1.4.0")',
        '//               implementation("com.google.ai.edge.litert:litert-support:1.4.0")',
        "import java.nio.ByteBuffer",
        "import java.nio.ByteOrder",
        *(f"import kotlin.math.{name}" for name in math),
        "import org.tensorflow.lite.Interpreter",
        "import org.tensorflow.lite.support.common.FileUtil",
        "",
        f'val interpreter = Interpreter(FileUtil.loadMappedFile(context, "{file}"),',
        f"    Interpreter.Options().setNumThreads({threads}))",
    ]


def _put(variable: str, in_q: tuple[float, int] | None) -> str:
    """Kotlin that appends the float ``variable`` to ``input``, quantized to int8 when the model takes int8."""
    if in_q is None:
        return f"input.putFloat({variable})"
    return f"input.put(({variable} / {in_q[0]:.8g}f {_plus(in_q[1])}).roundToInt().coerceIn(-128, 127).toByte())"


def _output_row(out_q: tuple[float, int] | None) -> tuple[str, str]:
    """The Kotlin array type of an output row and the expression that reads one value ``it`` of it as float."""
    if out_q is None:
        return "FloatArray", "it"
    return "ByteArray", f"(it {_plus(-out_q[1])}) * {out_q[0]:.8g}f"


def _kotlin_heads(
    inp: dict[str, Any],
    out: dict[str, Any],
    in_q: tuple[float, int] | None,
    out_q: tuple[float, int] | None,
    heads: tuple[Head, ...],
    threads: int,
    file: str,
) -> list[str]:
    """A Kotlin snippet for a multi-head model on float inputs: fill a batch of rows, read each head."""
    rows, columns = inp["shape"][0], int(np.prod(inp["shape"][1:]))
    kind, value = _output_row(out_q)
    reads = []
    for head, cols in Signature((), heads).columns():
        if head.kind == "binary":
            reads.append(f"    val {head.name} = 1f / (1f + exp(-row[{cols.start}]))  // probability")
        elif head.kind == "regression":
            reads.append(f"    val {head.name} = row[{cols.start}]")
        else:
            reads.append(f"    val {head.name} = (0 until {head.width}).maxBy {{ row[{cols.start} + it] }}")
    return [
        *_litert_start(file, threads, ["exp", *(["roundToInt"] if in_q else [])]),
        f"val input = ByteBuffer.allocateDirect({rows} * {columns} * {1 if in_q else 4})"
        ".order(ByteOrder.nativeOrder())",
        f"for (candidate in candidates) {{  // exactly {rows} rows (pad with copies of the last one)",
        f"    for (value in candidate.columns) {_put('value', in_q)}  // {columns} columns, as listed above",
        "}",
        f"val output = Array({rows}) {{ {kind}({out['shape'][-1]}) }}",
        "interpreter.run(input, output)",
        "val scored = output.map { raw ->",
        f"    val row = raw.map {{ {value} }}",
        *reads,
        f"    listOf({', '.join(h.name for h in heads)})",
        "}",
        "```",
    ]


def _kotlin(
    inp: dict[str, Any],
    out: dict[str, Any],
    in_q: tuple[float, int] | None,
    out_q: tuple[float, int] | None,
    pre: dict[str, Any],
    threads: int,
    file: str,
) -> list[str]:
    """A Kotlin snippet sized from the model's own shapes (a fixed batch of ``rows`` examples)."""
    rows, classes = inp["shape"][0], out["shape"][-1]
    elements = int(np.prod(inp["shape"]))
    kind, score = _output_row(out_q)
    if "tokenizer_folder" in pre:
        fill = [f"for (id in ids) {_put('id', in_q)}  // {elements} token ids (Float): {rows} text(s), as in Input"]
    else:
        fill = [
            f"for (raw in pixels) {{  // {elements} raw values: {rows} example(s), in the input's shape and layout",
            f"    val x = raw * {pre.get('scale', 1):g}f {_plus(pre.get('offset', 0))}f",
            f"    {_put('x', in_q)}",
            "}",
        ]
    return [
        *_litert_start(file, threads, ["roundToInt"]),
        f"val input = ByteBuffer.allocateDirect({elements} * {1 if in_q else 4}).order(ByteOrder.nativeOrder())",
        *fill,
        f"val output = Array({rows}) {{ {kind}({classes}) }}",
        "interpreter.run(input, output)",
        "val predicted = output.map { row ->",
        f"    val scores = row.map {{ {score} }}",
        "    labels[scores.indices.maxBy { scores[it] }]",
        "}",
        "```",
    ]


def _bars(title: str, rows: list[tuple[str, float, str]]) -> str:
    width, top = 420, max(v for _, v, _ in rows) or 1.0
    parts = [
        f'<svg width="{width + 160}" height="{30 * len(rows) + 30}"><text x="0" y="16">{html.escape(title)}</text>'
    ]
    for i, (name, value, text) in enumerate(rows):
        y, w = 26 + 30 * i, max(1.0, width * value / top)
        parts.append(
            f'<text x="0" y="{y + 15}">{html.escape(name)}</text>'
            f'<rect x="80" y="{y}" width="{w:.1f}" height="20" fill="#4c78a8"/>'
            f'<text x="{86 + w:.1f}" y="{y + 15}">{html.escape(text)}</text>'
        )
    return "".join(parts) + "</svg>"


def _histogram(samples: tuple[float, ...], title: str) -> str:
    counts, edges = np.histogram(np.asarray(samples), bins=30)
    width, height, top = 560, 160, max(counts.max(), 1)
    bar = width / len(counts)
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - height * c / top:.1f}" width="{bar - 1:.1f}" '
        f'height="{height * c / top:.1f}" fill="#f58518"/>'
        for i, c in enumerate(counts)
    )
    return (
        f'<p>{html.escape(title)}</p><svg width="{width}" height="{height + 20}">{rects}'
        f'<text x="0" y="{height + 16}">{edges[0]:.3g} ms</text>'
        f'<text x="{width - 70}" y="{height + 16}">{edges[-1]:.3g} ms</text></svg>'
    )


def report_html(manifest: dict[str, Any], report: ProfileReport, run_metrics: dict[str, Any]) -> str:
    """One self-contained page: teacher vs student, the latency distribution, and the budget verdict."""
    teacher, student = run_metrics["teacher"], run_metrics["student"]
    primary = report.parity.primary
    batch = max(report.host_latency)
    rows = "".join(
        f"<tr><td>{b.budget}</td><td>{b.limit:g}</td><td>{b.value:.4g}</td><td>{html.escape(b.unit)}</td>"
        f"<td>{html.escape(b.source)}</td>"
        f"<td style='color:{'green' if b.passed else 'red'}'>{b.status}</td></tr>"
        for b in report.budgets
    )
    verdict = "meets every budget" if report.within_budget else "misses a budget"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(manifest["name"])}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd}} svg text{{font-size:12px}}</style></head><body>
<h1>{html.escape(manifest["name"])}</h1>
<p>{report.backend} {report.precision} export for <b>{html.escape(report.device)}</b>: {verdict}.
Parity on {report.parity.examples} held-out examples: top-1 agreement {report.parity.top1_agreement:.2%},
max |diff| {report.parity.max_abs_diff:.3g}.</p>
<h2>Teacher vs student</h2>
{
        "".join(
            _bars(
                f"held-out {metric}",
                [
                    (
                        "teacher",
                        teacher["test_metrics"][metric],
                        format_metric(metric, teacher["test_metrics"][metric]),
                    ),
                    (
                        "student",
                        student["test_metrics"][metric],
                        format_metric(metric, student["test_metrics"][metric]),
                    ),
                    ("exported", report.parity.metrics[metric], format_metric(metric, report.parity.metrics[metric])),
                ],
            )
            for metric in primary
        )
    }
{
        _bars(
            "parameters",
            [
                ("teacher", teacher["parameters"], f"{teacher['parameters']:,}"),
                ("student", student["parameters"], f"{student['parameters']:,}"),
            ],
        )
    }
{
        _bars(
            "size (KB)",
            [
                ("teacher", teacher["size_bytes"] / 1024, f"{teacher['size_bytes'] / 1024:.1f} KB (fp32)"),
                ("student", student["size_bytes"] / 1024, f"{student['size_bytes'] / 1024:.1f} KB (fp32)"),
                ("exported", report.size_bytes / 1024, f"{report.size_bytes / 1024:.1f} KB ({report.precision})"),
            ],
        )
    }
<h2>Latency</h2>
{
        _histogram(
            report.host_latency[batch].samples_ms,
            f"host latency at batch {batch}, every timed call "
            f"(p50 {report.host_latency[batch].p50_ms:.3g} ms, p95 {report.host_latency[batch].p95_ms:.3g} ms)",
        )
    }
<p>Device p95: {report.device_latency.latency.p95_ms:.3g} ms ({html.escape(report.device_latency.label)}:
{html.escape(report.device_latency.how)}).</p>
<h2>Budgets</h2><table><tr><th>budget</th><th>limit</th><th>value</th><th>unit</th><th>source</th><th>status</th></tr>
{rows}</table></body></html>
"""
