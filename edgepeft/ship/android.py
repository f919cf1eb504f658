"""Push a bundle to an Android device over adb and time the model there with the runtime's own benchmark tool,
when its backend declares one (:meth:`Backend.device_benchmark`)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgepeft.errors import EdgepeftError

if TYPE_CHECKING:
    from edgepeft.api.backend import Backend
    from edgepeft.ship.profile import DeviceLatency

REMOTE_ROOT = "/data/local/tmp/edgepeft"


class AndroidDeviceError(EdgepeftError):
    """adb is missing, no device is attached, or a command on the device failed."""

    exit_code = 11


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

    def has_file(self, remote: str) -> bool:
        try:
            done = subprocess.run(
                [self.adb, "-s", self.serial, "shell", "ls", remote], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AndroidDeviceError(f"adb could not look for {remote}: {exc}") from None
        return done.returncode == 0

    def benchmark(
        self, backend: Backend, remote_model: str, threads: int, batch_size: int, runs: int = 100
    ) -> DeviceLatency | None:
        """The model's latency on the device, timed by the backend's benchmark tool; None when the backend
        declares none or the tool is not on the device."""
        from edgepeft.ship.profile import DeviceLatency, Latency

        command = backend.device_benchmark(remote_model, threads, runs)
        if not command or not self.has_file(command[0]):
            return None
        tool = command[0].rsplit("/", 1)[-1]
        timing = backend.device_timing(self._adb("shell", *command, what=f"run {tool}"))
        if timing is None:
            raise AndroidDeviceError(f"{tool} printed no timings", where=self.serial)
        latency = Latency(batch_size, timing.iterations, timing.p50_ms, timing.p95_ms, timing.p99_ms, timing.mean_ms)
        return DeviceLatency(
            latency, True, f"{timing.tool} on {self.serial}, {latency.iterations} timed runs, {threads} threads"
        )
