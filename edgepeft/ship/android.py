"""Push a bundle to an Android device over adb and time the model there with LiteRT's benchmark tool."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgepeft.errors import EdgepeftError

if TYPE_CHECKING:
    from edgepeft.ship.profile import DeviceLatency, Latency

REMOTE_ROOT = "/data/local/tmp/edgepeft"
BENCHMARK_TOOL = "/data/local/tmp/benchmark_model"
"""Where LiteRT's `benchmark_model` binary is expected on the device (adb push it there once)."""


class AndroidDeviceError(EdgepeftError):
    """adb is missing, no device is attached, or a command on the device failed."""

    exit_code = 11


def _parse_benchmark(output: str, batch_size: int) -> Latency | None:
    """The steady-state timings from `benchmark_model` output (microseconds), e.g.
    ``Timings (microseconds): count=50 first=1180 curr=598 min=510 max=798 avg=600.3 std=45 p5=520 median=590
    p95=700``; older tools print no percentiles, then p95 falls back to max (conservative)."""
    from edgepeft.ship.profile import Latency

    lines = [line for line in output.splitlines() if "count=" in line and "avg=" in line]
    if not lines:
        return None
    fields = dict(re.findall(r"(\w+)=([-+\d.eE]+)", lines[-1]))  # values may be like 1.23457e+06
    ms = {k: float(v) / 1e3 for k, v in fields.items() if k != "count"}
    p50 = ms.get("median", ms["avg"])
    p95 = ms.get("p95", ms.get("max", ms["avg"]))
    p99 = ms.get("p99", ms.get("max", p95))
    return Latency(batch_size, int(float(fields["count"])), p50, p95, p99, ms["avg"])


@dataclass
class AdbDevice:
    """One attached Android device, reached through the `adb` on PATH."""

    adb: str
    serial: str

    @classmethod
    def connect(cls, serial: str | None = None) -> AdbDevice:
        """The attached device (or the one with ``serial``); a clear error when adb or a device is missing."""
        adb = shutil.which("adb")
        if adb is None:
            raise AndroidDeviceError(
                "adb is not installed (not on PATH)",
                where="--push",
                fix="Install Android platform-tools, or deploy without --push",
            )
        listing = cls._run([adb, "devices"], "list devices")
        attached = [line.split()[0] for line in listing.splitlines()[1:] if line.strip().endswith("\tdevice")]
        if serial is not None:
            attached = [s for s in attached if s == serial]
        if not attached:
            raise AndroidDeviceError(
                "no Android device is attached" + (f" with serial {serial}" if serial else ""),
                where="adb devices",
                fix="Connect a device with USB debugging enabled (or start an emulator), or deploy without --push",
            )
        return cls(adb, attached[0])

    @staticmethod
    def _run(command: list[str], what: str, timeout: float = 600) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AndroidDeviceError(f"adb could not {what}: {exc}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise AndroidDeviceError(f"adb could not {what}: {detail[-1] if detail else f'exit {done.returncode}'}")
        return done.stdout

    def _adb(self, *args: str, what: str) -> str:
        return self._run([self.adb, "-s", self.serial, *args], what)

    def push(self, local: Path, remote: str) -> None:
        self._adb("shell", "mkdir", "-p", remote.rsplit("/", 1)[0], what=f"create {remote}'s folder")
        self._adb("push", str(local), remote, what=f"push {local.name}")

    def replace_folder(self, staged: str, final: str) -> None:
        """Swap a fully pushed staging folder into place, so the device never holds half a bundle."""
        self._adb("shell", "rm", "-rf", final, "&&", "mv", staged, final, what=f"move {staged} to {final}")

    def has_benchmark_tool(self) -> bool:
        try:
            done = subprocess.run(
                [self.adb, "-s", self.serial, "shell", "ls", BENCHMARK_TOOL], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AndroidDeviceError(f"adb could not look for {BENCHMARK_TOOL}: {exc}") from None
        return done.returncode == 0

    def benchmark(self, remote_model: str, threads: int, batch_size: int, runs: int = 100) -> DeviceLatency | None:
        """The model's latency on the device, or None when LiteRT's benchmark tool is not there."""
        from edgepeft.ship.profile import DeviceLatency

        if not self.has_benchmark_tool():
            return None
        output = self._adb(
            "shell",
            BENCHMARK_TOOL,
            f"--graph={remote_model}",
            f"--num_threads={threads}",
            f"--num_runs={runs}",
            what="run benchmark_model",
        )
        latency = _parse_benchmark(output, batch_size)
        if latency is None:
            raise AndroidDeviceError("benchmark_model printed no timings", where=self.serial)
        return DeviceLatency(
            latency,
            True,
            f"LiteRT benchmark_model on {self.serial}, {latency.iterations} timed runs, {threads} threads",
        )
