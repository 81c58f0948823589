"""Stand-ins for the devices: real protocol servers built from the collectors' driver files, driven by scenarios."""

from simulators.elevator import ElevatorSimulator
from simulators.endpoint import ModbusEndpoint
from simulators.scenario import Scenario, ScenarioError, load_scenario, play

__all__ = ["ElevatorSimulator", "ModbusEndpoint", "Scenario", "ScenarioError", "load_scenario", "play"]
