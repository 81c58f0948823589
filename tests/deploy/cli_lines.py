"""Checking a command line of a deployment file against the real `facmon` command: the sub-command exists, the
line parses with its options and values, and `--help` documents every option used."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from typer.testing import CliRunner

from facmon.shell.cli import app


def cli_problems(argv: Sequence[str]) -> list[str]:
    """Why `facmon ARGV` would not run as written; [] when it parses."""
    # Typer builds click commands (its own copy of click in recent versions, hence no isinstance checks here).
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(argv)
    while hasattr(command, "list_commands"):
        if not rest:
            return [f"facmon {' '.join(path)}: no sub-command given"]
        sub = command.get_command(command.context_class(command), rest[0])
        if sub is None:
            return [f"facmon {' '.join([*path, rest[0]])}: no such command"]
        path.append(rest.pop(0))
        command = sub
    where = f"facmon {' '.join(path)}"
    try:
        # Parses options and arguments and converts their values, as a real run would, without running it.
        command.make_context(where, list(rest))
    except Exception as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        return [f"{where} {' '.join(rest)}: {message}"]
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    if shown.exit_code != 0:
        return [f"{where} --help exits {shown.exit_code}"]
    options = [arg.split("=", 1)[0] for arg in rest if arg.startswith("--")]
    return [f"{where} --help does not list {option}" for option in options if option not in shown.output]
