"""The historian's tests share the gateway tests' helpers (they use the gateway to produce their load)."""

from tests.gateway.conftest import restartable_mosquitto

__all__ = ["restartable_mosquitto"]
