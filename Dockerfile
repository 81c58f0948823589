# facmon in a container: `docker compose up` runs it with Mosquitto, InfluxDB 1.8 and Grafana (docker-compose.yml).
FROM python:3.11-slim

WORKDIR /opt/facmon
# Everything the package needs (.dockerignore leaves out the virtualenv, state and caches).
COPY . .
RUN pip install --no-cache-dir .

# Work orders (SQLite) and the gateway's and historian's buffers live here.
ENV FACMON_STATE_DIR=/var/lib/facmon
VOLUME /var/lib/facmon
EXPOSE 8080
ENTRYPOINT ["facmon"]
CMD ["up", "--site", "/etc/facmon/site.yaml", "--api-host", "0.0.0.0", "--api-port", "8080"]
