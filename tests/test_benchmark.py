"""The benchmark harness: FLOP counts, the matmul peak, ratios, the Pareto front, and one --quick run of
`bench/run.py` end to end (trains digits for a few epochs, measures every candidate, writes the results)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from edgepeft.benchmark.bench import BenchResult, Candidate, Measurement, candidates
from edgepeft.benchmark.flops import MatmulPeak, forward_flops, matmul_peak
from edgepeft.benchmark.report import measured_table, pareto_front, plot_pareto, ratio_table, ratios, render
from edgepeft.ship.profile import Latency

ROOT = Path(__file__).resolve().parents[1]


def test_forward_flops_counts_convolutions_and_matmuls_per_example():
    import numpy as np

    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10)
    )
    conv = 2 * (8 * 8 * 4) * (1 * 3 * 3)  # one multiply-add per output element and kernel tap
    linear = 2 * 256 * 10
    assert forward_flops(model, np.zeros((5, 1, 8, 8), np.float32)) == conv + linear
    assert model.training, "the model's mode is restored"


def test_matmul_peak_is_a_positive_rate_and_sets_the_floor():
    before = torch.get_num_threads()
    peak = matmul_peak(threads=1, size=128, seconds=0.05)
    assert peak.flops_per_second > 1e8 and peak.threads == 1
    assert torch.get_num_threads() == before, "the thread setting is restored"
    assert MatmulPeak(2e9, 1024, 1).floor_ms(1e6) == pytest.approx(0.5)


@given(st.lists(st.tuples(st.floats(0.1, 1e4), st.floats(0, 100)), min_size=1, max_size=30))
def test_pareto_front_holds_exactly_the_undominated_points(points):
    front = set(pareto_front(points))

    def beats(a, b):  # a at least as small and at least as accurate, and better on one of them
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    for i, p in enumerate(points):
        dominated = any(beats(q, p) for q in points)
        if i in front:
            assert not dominated
        else:
            assert dominated or any(points[j] == p for j in front)


def _row(role: str, backend: str, size: int, ms: float, acc: float, refused: str = "", memory=50.0) -> Measurement:
    lat = {b: Latency(b, 10, ms * b, ms * b * 1.2, ms * b * 1.3, ms * b) for b in (1, 32, 256)}
    precision = {"teacher": "fp32", "baseline": "int8-dynamic" if backend == "onnx" else "int8"}.get(role, "int8")
    return Measurement(
        Candidate("student" if role == "student" else "teacher", backend, precision, role),
        parameters=1000,
        flops=10_000,
        size_bytes=size,
        metrics={"accuracy": acc},
        score=acc,
        agreement=1.0,
        peak_memory_mb=memory,
        latency={} if refused else lat,
        refused=refused,
    )


def _result(rows: list[Measurement], profile_batch: int = 32) -> BenchResult:
    return BenchResult("r", "d", 2, 100, profile_batch, 256, MatmulPeak(1e10, 1024, 2), rows)


def test_ratios_compare_each_row_with_the_teacher_the_baseline_and_its_runtime_baseline():
    rows = [
        _row("teacher", "cpu", 4000, 1.0, 0.95, memory=400.0),
        _row("baseline", "onnx", 1000, 0.5, 0.94, memory=100.0),
        _row("baseline", "tflite", 800, 0.25, 0.94),
        _row("student", "tflite", 100, 0.1, 0.93),
        _row("student", "onnx", 100, 0.1, 0.93, refused="agreement 90% < 99%"),
    ]
    by_label = {r.label: r for r in ratios(_result(rows))}
    assert set(by_label) == {
        "teacher cpu fp32",
        "teacher onnx int8-dynamic",
        "teacher tflite int8",
        "student tflite int8",
    }
    student = by_label["student tflite int8"]
    assert student.teacher.smaller == pytest.approx(40) and student.baseline.smaller == pytest.approx(10)
    assert student.same_runtime_baseline.smaller == pytest.approx(8)
    assert student.teacher.faster == pytest.approx(10) and student.baseline.faster == pytest.approx(5)
    assert student.baseline.faster_at_profile_batch == pytest.approx(5)
    assert student.baseline.throughput == pytest.approx(5) and student.same_runtime_baseline.throughput == 2.5
    assert student.teacher.less_memory == pytest.approx(8) and student.baseline.less_memory == pytest.approx(2)
    assert student.teacher.score_points == pytest.approx(-2) and student.baseline.score_points == pytest.approx(-1)
    assert by_label["teacher cpu fp32"].same_runtime_baseline is None


def test_tables_show_refused_rows_missing_baselines_and_unmeasured_memory():
    rows = [
        _row("teacher", "cpu", 4000, 1.0, 0.95),
        _row("baseline", "onnx", 1000, 0.5, 0.94, refused="onnx export failed"),
        _row("student", "tflite", 100, 0.1, 0.93, memory=None),
    ]
    result = _result(rows, profile_batch=256)
    header, measured = measured_table(result)
    assert "p50 / p95 ms @256" in header, "the profile's batch has its column even when it is the large batch"
    assert "not measured: onnx export failed" in measured[1]
    assert measured[2][header.index("peak MB")] == "-"
    header, rows_ = ratio_table(result)
    student = dict(zip(header, rows_[-1], strict=True))
    assert student["smaller T / B / R"] == "40.00x / - / -" and student["less memory T / B / R"] == "- / - / -"
    assert result.as_dict()["references"] == {"teacher": "teacher cpu fp32", "baseline": None}
    assert "B = the baseline, not measured" in render(result, [])


def test_plot_is_written_atomically_and_skipped_without_measured_rows(tmp_path):
    rows = [_row("teacher", "cpu", 4000, 1.0, 0.95), _row("student", "tflite", 100, 0.1, 0.93)]
    assert plot_pareto(_result(rows), tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and len(list(tmp_path.iterdir())) == 1
    refused = [_row("teacher", "cpu", 4000, 1.0, 0.95, refused="no")]
    assert not plot_pareto(_result(refused), tmp_path / "q.png") and not (tmp_path / "q.png").exists()


def test_candidates_are_the_teacher_references_the_baselines_and_every_student_export(manager):
    found, skipped = candidates(manager)
    labels = {c.label: c.role for c in found}
    assert labels["teacher cpu fp32"] == "teacher"
    assert labels["teacher onnx int8-dynamic"] == labels["teacher tflite int8"] == "baseline"
    for backend in ("onnx", "tflite"):
        for precision in ("fp32", "int8", "int8-dynamic"):
            assert labels[f"student {backend} {precision}"] == "student"
    if not torch.cuda.is_available():
        assert any(line.startswith("student cuda fp32:") for line in skipped)


def test_bench_command_names_a_missing_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgepeft", "bench", "nope", "--device", "x86-server", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "nope" in proc.stderr and "error:" in proc.stderr


def test_bench_only_names_models_it_can_measure(tmp_path):
    args = ["bench", "nope", "--device", "x86-server", "--runs-dir", str(tmp_path), "--only", "teacher onnx fp99"]
    proc = subprocess.run([sys.executable, "-m", "edgepeft", *args], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "nothing to measure named 'teacher onnx fp99'" in proc.stderr and "student onnx int8" in proc.stderr


def test_quick_harness_measures_every_candidate_and_writes_table_plot_and_overhead(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "digits" / "bench.json").read_text())
    metrics = json.loads((out / "runs" / "digits-distill" / "metrics.json").read_text())
    rows = {r["label"]: r for r in result["rows"]}
    assert all(not r["refused"] for r in rows.values()), [r["refused"] for r in rows.values()]
    for label in ("teacher cpu fp32", "teacher onnx int8-dynamic", "teacher tflite int8", "student tflite int8"):
        row = rows[label]
        assert row["size_bytes"] > 0 and row["peak_memory_mb"] > 0 and row["flops_per_example"] > 0
        assert set(row["latency_ms"]) == {"1", "32", "256"}  # batch 1, x86-server's batch, throughput
    # the PyTorch rows answer exactly as the trained models did at the end of training
    assert rows["teacher cpu fp32"]["score"] == pytest.approx(metrics["teacher"]["test_score"])
    assert rows["student cpu fp32"]["score"] == pytest.approx(metrics["student"]["test_score"])
    assert rows["student cpu fp32"]["parameters"] == metrics["student"]["parameters"]
    assert result["references"] == {"teacher": "teacher cpu fp32", "baseline": "teacher onnx int8-dynamic"}
    student = next(r for r in result["ratios"] if r["label"] == "student tflite int8")
    assert student["baseline"]["smaller"] > 1, "the int8 student file is smaller than the int8 teacher's"
    assert result["matmul_peak"]["flops_per_second"] > 1e8
    assert (out / "digits" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    overhead = json.loads((out / "overhead.json").read_text())
    assert overhead["cli"]["edgepeft_help_s"] > overhead["cli"]["python_pass_s"] > 0
    training = overhead["training"]
    assert training["edgepeft_ms_per_step"] > 0 and training["plain_ms_per_step"] > 0
    assert -1 < training["loop_overhead"] < 10 and -10 < training["caching_saving"] < 1
    summary = (out / "summary.md").read_text()
    assert "| student tflite int8 |" in summary and "Toolkit overhead" in summary
