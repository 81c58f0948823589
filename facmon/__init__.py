"""facmon: monitoring for the elevators, fire systems, gate barriers and cameras of residential estates."""

from facmon.kernel import mqtt_patch as _aiomqtt_patch

__version__ = "0.1.0"

_aiomqtt_patch.apply()
