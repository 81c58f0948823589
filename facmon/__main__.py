"""`python -m facmon`: the `facmon` command."""

from facmon.shell.cli import main

main()
