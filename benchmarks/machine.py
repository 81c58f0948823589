"""What a benchmark ran on, printed with its figures: CPU model, cores, memory, load, Python and the daemons'
versions. Figures from a busy machine are not comparable with a quiet one's, so the load goes with them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def describe() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"machine: {_cpu_model()}, {os.cpu_count()} cores, {_memory_gib():.1f} GiB, {platform.system()} "
        f"{platform.release()}",
        f"load average (1, 5, 15 min): {load}",
        f"python {sys.version.split()[0]}; {_version(['mosquitto', '-h'])}; influxd {_version(['influxd', 'version'])}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
