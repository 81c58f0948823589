"""The site's barriers and cameras as the MQTT collector's device specs: each with its driver and its grace.

Used by the MQTT family of `gateway.families` to build the site's collector."""

from __future__ import annotations

from collectors.mqtt.collector import MqttDevice
from collectors.mqtt.driver import MqttDriver
from collectors.registry import mqtt_driver
from facmon.estate.entries import Device
from facmon.estate.site import Site
from facmon.kernel.model import MQTT_KINDS

# A device that has not set its own comm_grace_s may miss this many heartbeats before it is reported lost.
HEARTBEATS_OF_GRACE = 3


def grace_s(device: Device, driver: MqttDriver) -> float:
    """The site file's comm_grace_s when it sets one; else three heartbeat intervals (3 s would flap)."""
    if "comm_grace_s" in device.model_fields_set:
        return device.comm_grace_s
    return HEARTBEATS_OF_GRACE * driver.heartbeat.interval_s


def mqtt_device(site: Site, device: Device) -> MqttDevice:
    """One barrier or camera of the site with its driver (the site file was checked against the registry at load)."""
    driver = mqtt_driver(device.model)
    return MqttDevice(site.ref(device.id), driver, device.mqtt_id, grace_s(device, driver))


def site_devices(site: Site) -> list[MqttDevice]:
    """The site's MQTT devices with their drivers."""
    return [mqtt_device(site, device) for _, device in site.devices() if device.kind in MQTT_KINDS]
