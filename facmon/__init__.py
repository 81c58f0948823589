"""facmon: monitoring for the elevators, fire systems, gate barriers and cameras of residential estates."""

__version__ = "0.1.0"
