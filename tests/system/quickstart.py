"""The README's quick start as a newcomer runs it: a fresh clone, `make demo` with the default state folder.

The clone is of this repository, with the working tree's uncommitted changes laid over it, so the test checks what
is about to be committed. It borrows the project's virtualenv instead of building one (that needs the network and
minutes), and runs the clone's own code through PYTHONPATH. Only the API port is chosen, the way the README shows
(`make demo DEMO_ARGS="--api-port N"`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fresh_clone(dest: Path) -> Path:
    """`git clone` of the repository into `dest`, with the working tree's changes on top and the venv borrowed."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True)
    changed = subprocess.run(  # staged and unstaged, moves and deletions included
        ["git", "diff", "HEAD", "--name-only", "--no-renames", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    untracked = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    for name in filter(None, (n.decode() for n in (changed + untracked).split(b"\0"))):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
        else:
            (dest / name).unlink(missing_ok=True)  # deleted in the working tree
    (dest / ".venv").symlink_to(REPO / ".venv")
    return dest


@dataclass
class Demo:
    """`make demo` running in its own process group, its output collected line by line."""

    clone: Path
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                seen += 1
                found = re.search(pattern, line)
                if found:
                    return found
            if self.proc.poll() is not None and seen == len(self.lines):
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} in {timeout_s} s; output:\n{self.output()}")

    def output(self) -> str:
        return "".join(self.lines[-80:])

    def interrupt(self, timeout_s: float = 60) -> int:
        """Ctrl-C at the terminal: SIGINT to the whole process group, as a shell sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        """Whatever is left of it, gone; its output pipe closed once read to the end."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def make_demo(clone: Path, api_port: int) -> Demo:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    env["PYTHONPATH"] = str(clone)
    # -o: the borrowed virtualenv is taken as it is; rebuilding it from the clone would point it at a temporary
    # folder. `deps` still runs: it installs nothing when the Debian packages are there, as on a prepared machine.
    proc = subprocess.Popen(
        ["make", "-o", "venv", "-o", ".venv/.installed", "demo", f"DEMO_ARGS=--api-port {api_port}"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    demo = Demo(clone, proc)

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.lines.append(line)

    demo.reader = threading.Thread(target=collect, daemon=True)
    demo.reader.start()
    return demo


def processes_of(folder: Path) -> list[str]:
    """Command lines of running processes that work in `folder` or name it (a clone's facmon, Mosquitto, influxd)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(folder) in cmdline or cwd.startswith(str(folder)):
            found.append(f"{entry.name}: {cmdline}")
    return found
