"""A believable past for a site: a year (by default) of work orders, maintenance visits, fire checks and alarms in
the work-order database, and of readings, events and work-order lifecycle points in InfluxDB, made from a seed
through facmon's own rules, workflow and monitors (`facmon demo-history`, README "The demo's past")."""

from facmon.demo_history.generate import DEMO_SEED, ensure_demo_history, generate_history
from facmon.demo_history.guard import HistoryRefused
from facmon.demo_history.summary import HistorySummary

__all__ = ["DEMO_SEED", "HistoryRefused", "HistorySummary", "ensure_demo_history", "generate_history"]
