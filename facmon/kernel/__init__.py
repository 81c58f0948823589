"""The kernel: the bottom of the house. It imports nothing else of facmon; everything else may import it.

The domain model (`model`), the injectable clock (`clock`), metrics without a global registry (`metrics`), MQTT topic
names (`topics`), the one data-file loader (`datafile`, `yaml_lines`), and infrastructure written once: the SQLAlchemy
base without tables (`db`), the InfluxDB v1 client (`influx`), the MQTT client and its factory (`mqtt`), the durable
SQLite queue under the gateway's outbox and the historian's buffer (`sqlite_queue`), capped backoff with jitter
(`backoff`), the periodic database monitor loop (`ticking`), health and metrics HTTP (`health`, `httpserve`) and
long-running service helpers (`daemons`).
"""
