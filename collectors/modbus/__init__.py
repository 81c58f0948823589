"""Polled collectors over Modbus TCP, driven by register-map data files."""
