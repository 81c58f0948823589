"""Running facmon as a service: the work-order database's schema, its backups, and health probes.

Each command lives in its own module and is registered in facmon/shell/cli.py with a line or two.
"""
