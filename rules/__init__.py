"""rules: turns the event stream into work orders.

- `rules.engine`: rule files (YAML, `rules/library/`) and the pure `evaluate(rules, event, now) -> list[Action]`.
- `rules.pipeline`: an event through a list of handlers in one transaction, idempotent per event id.
- `rules.store`: the handler that writes the device's status and the work orders the actions open or clear.
- `rules.arrival`: proof of arrival from the site (card read at the gate, inspection mode), as handlers.
- `rules.state_engine`, `rules.state_rules`, `rules.state_store`: device state (comm, faults) and the holds on it.
- `rules.fire`, `rules.fire_checks`: fire alarms, and the fire checks the plan promises.
- `rules.fire_intact`, `rules.fire_intact_writer`, `rules.fire_point_store`: the intact rate over each panel's
  commissioned points, and the point table (with its decommissioning) it counts them from.
- `rules.obligations`: something due every period, done by evidence, else an overdue work order, once.
- `rules.maintenance_visits`, `rules.maintenance_settle`: planned maintenance visits, their overdue work orders
  and the settling of those by a visit.
- `rules.tables`: the rules' own tables (processed events, device state, fire checks and points, holds,
  watermarks).
- `rules.worker`: `RulesWorker`, the MQTT event consumer.
- `rules.monitors`: the periodic parts beside it (SLA breaches, lifecycle export, fire intact, the timers), each a
  service the composition root starts next to the worker.

Work orders themselves (tables, transitions, SLA, workflow, queries) live in `facmon.workorders`.
Deliberately no re-exports here: importing a table module for the API must not pull in the MQTT client.
"""
