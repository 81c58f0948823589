"""rules: turns the event stream into work orders.

- `rules.engine`: rule files (YAML, `rules/library/`) and the pure `evaluate(rules, event, now) -> list[Action]`.
- `rules.sla`: SLA profiles (`rules/library/sla.yaml`), their deadlines, and the pure `compliance(clocks, now)`.
- `rules.transitions`: the work-order lifecycle as a table and the pure `plan(current, to)`.
- `rules.store`: applies actions in one transaction, idempotent per event id; reads work orders back.
- `rules.workflow`: status transitions (from any source: api, card_read, inspection_mode, rules) and follow-ups.
- `rules.sla_monitor`: `SlaMonitor`, which records each breached deadline once and hands it to a callback.
- `rules.lifecycle`: timeline entries as InfluxDB points, the sink interface and the exporter.
- `rules.db`: tables, `make_engine(url)`, `create_schema(engine)` (Alembic, `rules/migrations/`).
- `rules.worker`: `RulesWorker`, the MQTT consumer, SLA monitor and exporter as one TaskGroup.

Deliberately no re-exports here: importing `rules.db` for the API must not pull in the MQTT client.
"""
