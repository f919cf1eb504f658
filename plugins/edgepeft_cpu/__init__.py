"""Backend plugin ``cpu``: a ``torch.export`` program (.pt2), run by PyTorch on the CPU."""

from __future__ import annotations

import edgepeft
from edgepeft import TorchProgramBackend


class CPUBackend(TorchProgramBackend):
    name = "cpu"
    description = "torch.export program (.pt2) run by PyTorch eager on the CPU"
    teacher_precisions = ("fp32",)  # the teacher as trained: the reference of every bench ratio
    bench_rank = 2


@edgepeft.hookimpl
def edgepeft_register_backends(register: edgepeft.Registrar) -> None:
    register(CPUBackend)
