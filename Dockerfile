# facmon in a container, as the unprivileged user facmon (uid 10001). One facmon process per container: the default
# command serves the API for the site file mounted at /etc/facmon/site.yaml; deploy/compose/docker-compose.prod.yml
# runs gateway, historian, rules, notifier and API from this image. The demo (docker-compose.yml) runs `up --demo`.
FROM python:3.11-slim

WORKDIR /opt/facmon
# Everything the package needs (.dockerignore leaves out the virtualenv, state, caches and local secrets).
COPY . .
# Mosquitto for the demo (docker-compose.yml): `facmon up` runs it beside the services with generated logins.
RUN apt-get update && apt-get install -y --no-install-recommends mosquitto && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir . \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/facmon --no-create-home \
       --shell /usr/sbin/nologin facmon \
    && install -d -o facmon -g facmon -m 0750 /var/lib/facmon

# Work orders (SQLite) and the gateway's and historian's buffers live here; a new volume takes the folder's owner.
ENV FACMON_STATE_DIR=/var/lib/facmon
VOLUME /var/lib/facmon
USER 10001:10001
EXPOSE 8080
# Turns FACMON_<NAME>_FILE (Docker secrets) into FACMON_<NAME>, then runs `facmon ARGS`.
ENTRYPOINT ["/bin/sh", "/opt/facmon/deploy/docker/entrypoint.sh"]
CMD ["api", "--site", "/etc/facmon/site.yaml", "--host", "0.0.0.0", "--port", "8080"]
