"""What a measurement ran on: one description of the machine for benchmarks, speed runs and
training metadata (no paths, nothing that identifies the user)."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Hardware and versions of this process: CPU, cores, torch threads and SIMD level, GPUs."""
    import numpy
    import torch

    from .. import __version__

    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "restorekit": __version__, "platform": platform.platform(), "cpu": cpu_name(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        env["cuda"] = torch.version.cuda
    return env
