"""Pushed devices: gate barriers and cameras that publish vendor JSON payloads over MQTT."""
