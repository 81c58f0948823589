"""rules: turns the event stream into work orders.

- `rules.engine`: rule files (YAML, `rules/library/`) and the pure `evaluate(rules, event, now) -> list[Action]`.
- `rules.store`: applies actions in one transaction, idempotent per event id.
- `rules.arrival`: proof of arrival from the site (card read at the gate, inspection mode).
- `rules.state_engine`, `rules.state_rules`, `rules.state_store`: device state (comm, faults) and the holds on it.
- `rules.fire`, `rules.fire_checks`, `rules.fire_intact`: fire alarms, the fire checks the plan promises, intactness.
- `rules.maintenance_visits`: planned maintenance visits and their overdue work orders.
- `rules.tables`: the rules' own tables (processed events, device state, fire checks, holds, watermarks).
- `rules.worker`: `RulesWorker`, the MQTT event consumer.

Work orders themselves (tables, transitions, SLA, workflow, queries) live in `facmon.workorders`.
Deliberately no re-exports here: importing a table module for the API must not pull in the MQTT client.
"""
