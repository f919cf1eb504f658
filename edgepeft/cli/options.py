"""Arguments and options that several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunArgument = Annotated[Path, typer.Argument(help="Run folder (runs/<name>) or run name.")]
RunsDirOption = Annotated[Path, typer.Option(help="Where run names are looked up.")]
DeviceOption = Annotated[str, typer.Option("--device", "-d", help="Device profile name (see `edgepeft devices`).")]
TimingOption = Annotated[
    float, typer.Option(min=0.05, help="Seconds to time each batch size (after warm-up); longer is steadier.")
]
