"""LiteRT's ``benchmark_model`` on an attached Android device: its command line and the timings it prints."""

from __future__ import annotations

import re

from edgepeft import DeviceTiming

BENCHMARK_TOOL = "/data/local/tmp/benchmark_model"
"""Where LiteRT's `benchmark_model` binary is expected on the device (adb push it there once)."""


def benchmark_command(remote_model: str, threads: int, runs: int) -> list[str]:
    return [BENCHMARK_TOOL, f"--graph={remote_model}", f"--num_threads={threads}", f"--num_runs={runs}"]


def parse_timings(output: str) -> DeviceTiming | None:
    """The steady-state timings from `benchmark_model` output (microseconds), e.g.
    ``Timings (microseconds): count=50 first=1180 curr=598 min=510 max=798 avg=600.3 std=45 p5=520 median=590
    p95=700``; older tools print no percentiles, then p95 falls back to max (conservative)."""
    lines = [line for line in output.splitlines() if "count=" in line and "avg=" in line]
    if not lines:
        return None
    fields = dict(re.findall(r"(\w+)=([-+\d.eE]+)", lines[-1]))  # values may be like 1.23457e+06
    ms = {k: float(v) / 1e3 for k, v in fields.items() if k != "count"}
    p50 = ms.get("median", ms["avg"])
    p95 = ms.get("p95", ms.get("max", ms["avg"]))
    p99 = ms.get("p99", ms.get("max", p95))
    return DeviceTiming("LiteRT benchmark_model", int(float(fields["count"])), p50, p95, p99, ms["avg"])
