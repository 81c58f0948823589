"""rules: turns the event stream into work orders.

- `rules.engine`: rule files (YAML, `rules/library/`) and the pure `evaluate(rules, event, now) -> list[Action]`.
- `rules.store`: applies actions in one transaction, idempotent per event id; reads work orders back.
- `rules.db`: tables, `make_engine(url)`, `create_schema(engine)` (Alembic, `rules/migrations/`).
- `rules.worker`: `RulesWorker`, the MQTT consumer that ties them together.

Deliberately no re-exports here: importing `rules.db` for the API must not pull in the MQTT client.
"""
