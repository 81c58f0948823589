"""A believable past for a site: a year (by default) of work orders, maintenance visits, fire checks and alarms in
the work-order database, and of readings, events and work-order lifecycle points in InfluxDB, made from a seed
through facmon's own rules, workflow and monitors.

`facmon.demo_history.generate` has `generate_history` and `ensure_demo_history`; `facmon demo-history` is the
command (facmon.shell.demo_history_cli). Nothing is imported here, so the `facmon` command starts as fast as before.
"""
