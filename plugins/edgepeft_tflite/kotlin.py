"""The README section that loads a bundle's .tflite file on Android with LiteRT (Kotlin), sized from the
model's own shapes and quantization."""

from __future__ import annotations

import math

from edgepeft import BundleFacts, Signature


def _plus(value: float) -> str:
    """`+ 3` or `- 3`, to write `x + z` formulas without `+ -3`."""
    return f"+ {value:g}" if value >= 0 else f"- {-value:g}"


def _quantization(spec: dict[str, float] | None) -> tuple[float, int] | None:
    return (spec["scale"], int(spec["zero_point"])) if spec else None


def kotlin_snippet(facts: BundleFacts) -> str:
    """A Kotlin snippet for a classifier (or a text model), or for a multi-head model on float rows."""
    lines = _classifier(facts) if facts.classifier else _heads(facts)
    return "\n".join(lines)


def _litert_start(file: str, threads: int, math_names: list[str]) -> list[str]:
    """The opening of a Kotlin snippet: dependencies, imports (``kotlin.math`` names), interpreter."""
    return [
        "## Load it on Android (Kotlin, LiteRT)",
        "```kotlin",
        '// build.gradle: implementation("com.google.ai.edge.litert:litert:1.4.0")',
        '//               implementation("com.google.ai.edge.litert:litert-support:1.4.0")',
        "import java.nio.ByteBuffer",
        "import java.nio.ByteOrder",
        *(f"import kotlin.math.{name}" for name in math_names),
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


def _heads(facts: BundleFacts) -> list[str]:
    """A multi-head model on float inputs: fill a batch of rows, read each head."""
    inp, out = facts.inputs[0], facts.outputs[0]
    in_q, out_q = _quantization(inp.quantization), _quantization(out.quantization)
    rows, columns = inp.shape[0], math.prod(int(d) for d in inp.shape[1:])
    kind, value = _output_row(out_q)
    reads = []
    for head, cols in Signature((), facts.heads).columns():
        if head.kind == "binary":
            reads.append(f"    val {head.name} = 1f / (1f + exp(-row[{cols.start}]))  // probability")
        elif head.kind == "regression":
            reads.append(f"    val {head.name} = row[{cols.start}]")
        else:
            reads.append(f"    val {head.name} = (0 until {head.width}).maxBy {{ row[{cols.start} + it] }}")
    return [
        *_litert_start(facts.model_file, facts.threads, ["exp", *(["roundToInt"] if in_q else [])]),
        f"val input = ByteBuffer.allocateDirect({rows} * {columns} * {1 if in_q else 4})"
        ".order(ByteOrder.nativeOrder())",
        f"for (candidate in candidates) {{  // exactly {rows} rows (pad with copies of the last one)",
        f"    for (value in candidate.columns) {_put('value', in_q)}  // {columns} columns, as listed above",
        "}",
        f"val output = Array({rows}) {{ {kind}({out.shape[-1]}) }}",
        "interpreter.run(input, output)",
        "val scored = output.map { raw ->",
        f"    val row = raw.map {{ {value} }}",
        *reads,
        f"    listOf({', '.join(h.name for h in facts.heads)})",
        "}",
        "```",
    ]


def _classifier(facts: BundleFacts) -> list[str]:
    """A classifier sized from the model's own shapes (a fixed batch of ``rows`` examples)."""
    inp, out, pre = facts.inputs[0], facts.outputs[0], facts.preprocessing
    in_q, out_q = _quantization(inp.quantization), _quantization(out.quantization)
    rows, classes = inp.shape[0], out.shape[-1]
    elements = math.prod(int(d) for d in inp.shape)
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
        *_litert_start(facts.model_file, facts.threads, ["roundToInt"]),
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
