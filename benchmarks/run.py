"""Run every benchmark in this folder (`make bench`) and print their figures.

Each `bench_*.py` starts the real services it needs in a temporary folder and prints its own figures; this runner
only runs them one after another and reports which failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    from machine import describe

    print(describe(), flush=True)
    print(flush=True)
    failed = []
    for script in sorted(here.glob("bench_*.py")):
        print(f"== {script.stem}", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(script.stem)
        print(flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
