"""The bundle's report.html: teacher vs student, latency distribution and budget verdict, with inline SVG charts."""

from __future__ import annotations

import html

import numpy as np

from edgepeft.api.tasks import format_metric
from edgepeft.artifacts.manifest import Manifest
from edgepeft.artifacts.metrics import RunMetrics
from edgepeft.ship.profile import ProfileReport


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


def report_html(manifest: Manifest, report: ProfileReport, run_metrics: RunMetrics) -> str:
    """One self-contained page: teacher vs student, the latency distribution, and the budget verdict."""
    teacher, student = run_metrics.teacher, run_metrics.student
    primary = report.parity.primary
    batch = max(report.host_latency)
    rows = "".join(
        f"<tr><td>{b.budget}</td><td>{b.limit:g}</td><td>{b.value:.4g}</td><td>{html.escape(b.unit)}</td>"
        f"<td>{html.escape(b.source)}</td>"
        f"<td style='color:{'green' if b.passed else 'red'}'>{b.status}</td></tr>"
        for b in report.budgets
    )
    verdict = "meets every budget" if report.within_budget else "misses a budget"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(manifest.name)}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd}} svg text{{font-size:12px}}</style></head><body>
<h1>{html.escape(manifest.name)}</h1>
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
                        teacher.test_metrics[metric],
                        format_metric(metric, teacher.test_metrics[metric]),
                    ),
                    (
                        "student",
                        student.test_metrics[metric],
                        format_metric(metric, student.test_metrics[metric]),
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
                ("teacher", teacher.parameters, f"{teacher.parameters:,}"),
                ("student", student.parameters, f"{student.parameters:,}"),
            ],
        )
    }
{
        _bars(
            "size (KB)",
            [
                ("teacher", teacher.size_bytes / 1024, f"{teacher.size_bytes / 1024:.1f} KB (fp32)"),
                ("student", student.size_bytes / 1024, f"{student.size_bytes / 1024:.1f} KB (fp32)"),
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
