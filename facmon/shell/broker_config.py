"""A Mosquitto configuration for facmon, made from the site files: a login and an ACL per role, nothing anonymous.

`facmon broker-config --site FILE... --out DIR` writes it for a real broker and `facmon up` for its own. Roles:

| login | may publish | may read |
|---|---|---|
| `gateway-<site>` | `facmon/v1/<site>/+/+/{state,event}`, `facmon/v1/_dead/<site>/#` | its estate's vendor topics |
| `devices-<site>` | its estate's vendor topics | the simulators' commands of its estate (`facmon up` only) |
| `historian` | `facmon/v1/_dead/#` | `facmon/v1/+/+/+/state`, `facmon/v1/+/+/+/event` |
| `rules` | `facmon/v1/_dead/#` | `facmon/v1/+/+/+/event`, the fire panels' states |
| `notifier` | `facmon/v1/+/push/#` | nothing |
| `console` | the simulators' commands (`facmon up` only) | `facmon/v1/#`: people watching the backbone |

So a gateway's login cannot file an event under another estate, and a barrier's cannot speak for an elevator.
Passwords are random (`secrets`), kept in one env file per login (mode 0600, the settings the service reads:
FACMON_MQTT_USERNAME, FACMON_MQTT_PASSWORD, FACMON_MQTT_TLS_CA; and alone in `<login>.password`, for a secret) and,
as Mosquitto's PBKDF2-SHA512 hash (the `$7$`
format of `mosquitto_passwd`, written here so no password ever appears on a command line), in the password file.
Run again, it keeps the passwords of the env files it finds, so running services keep working.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collectors.registry import mqtt_driver
from facmon.estate.site import Site
from facmon.kernel.model import MQTT_KINDS, DeviceKind
from facmon.kernel.topics import DEAD_LETTER, ROOT

__all__ = ["BrokerFiles", "Listener", "Login", "Role", "roles", "write_broker_config"]

# Mosquitto's own default is 101; more costs each connection a little and a stolen password file much more.
_PBKDF2_ITERATIONS = 1000
_SIM_COMMANDS = "facmon-sim/v1"


@dataclass(frozen=True)
class Role:
    user: str
    writes: tuple[str, ...]
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listener:
    """One listener: TLS when `tls` is (CA, certificate, key) as the broker reads them, else plain."""

    port: int
    bind: str
    tls: tuple[Path, Path, Path] | None = None
    require_certificate: bool = False


@dataclass(frozen=True)
class Login:
    user: str
    password: str
    env_file: Path


@dataclass(frozen=True)
class BrokerFiles:
    conf: Path
    password_file: Path
    acl_file: Path
    logins: dict[str, Login]


def vendor_topics(site: Site) -> list[str]:
    """The topics the estate's MQTT devices publish to, one pattern per device (its vendor id, any message)."""
    prefix = site.mqtt.topic_prefix if site.mqtt else ""
    topics = []
    for _, device in site.devices():
        if device.kind in MQTT_KINDS:
            topics.append(mqtt_driver(device.model).topic_for(device.mqtt_id, "+", prefix))
    return topics


def roles(sites: Sequence[Site], *, simulators: bool = False) -> list[Role]:
    """Every login of facmon's services for `sites`; `simulators`: the devices' logins take the simulators'
    commands too (`facmon up --simulate`)."""
    events = f"{ROOT}/+/+/+/event"
    found = [
        Role("historian", writes=(f"{DEAD_LETTER}/#",), reads=(f"{ROOT}/+/+/+/state", events)),
        Role("rules", writes=(f"{DEAD_LETTER}/#",), reads=(events, f"{ROOT}/+/{DeviceKind.FIRE_PANEL.value}/+/state")),
        Role("notifier", writes=(f"{ROOT}/+/push/#",)),
        # People watching the backbone (mosquitto_sub): reading forges nothing.
        Role("console", writes=(f"{_SIM_COMMANDS}/#",) if simulators else (), reads=(f"{ROOT}/#",)),
    ]
    for site in sites:
        vendor = tuple(vendor_topics(site))
        # Its devices' states and events, not all of facmon/v1/<site>/#: that holds the pushes to the technicians'
        # phones too, which are the notifier's to send.
        tree = (f"{ROOT}/{site.id}/+/+/state", f"{ROOT}/{site.id}/+/+/event", f"{DEAD_LETTER}/{site.id}/#")
        found.append(Role(f"gateway-{site.id}", writes=tree, reads=vendor))
        commands = (f"{_SIM_COMMANDS}/{site.id}/#",) if simulators else ()
        found.append(Role(f"devices-{site.id}", writes=vendor, reads=commands))
    return found


def acl_text(all_roles: Iterable[Role]) -> str:
    lines = ["# facmon: one block per login; what a block does not grant is refused.", ""]
    for role in all_roles:
        lines.append(f"user {role.user}")
        lines += [f"topic write {topic}" for topic in role.writes]
        lines += [f"topic read {topic}" for topic in role.reads]
        lines.append("")
    return "\n".join(lines)


def password_hash(password: str, salt: bytes | None = None, iterations: int = _PBKDF2_ITERATIONS) -> str:
    """Mosquitto's `$7$` hash: PBKDF2-HMAC-SHA512, `$7$<iterations>$<salt, base64>$<hash, base64>`."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only, also when the file was there with a wider mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def _kept_password(env_file: Path) -> str | None:
    try:
        lines = env_file.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("FACMON_MQTT_PASSWORD="):
            return line.partition("=")[2].strip() or None
    return None


def _env_text(user: str, password: str, ca: Path | None) -> str:
    lines = [f"FACMON_MQTT_USERNAME={user}", f"FACMON_MQTT_PASSWORD={password}"]
    if ca is not None:
        lines.append(f"FACMON_MQTT_TLS_CA={ca}")
    return "\n".join(lines) + "\n"


def conf_text(listeners: Sequence[Listener], conf_dir: Path) -> str:
    """The security part of mosquitto.conf: the same logins and ACL on every listener, no anonymous client."""
    lines = [
        "# Made by `facmon broker-config` from the site files; run it again after changing them.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {conf_dir / 'passwd'}",
        f"acl_file {conf_dir / 'acl'}",
        # A persistent session (the historian's, the rules worker's, a gateway's at the vendor side) keeps what
        # arrives while its client is away; Mosquitto's default of 1,000 queued messages is under 10 s of an estate
        # at full rate, so a restart of a few seconds would lose messages. Bounded, so a client gone for good cannot
        # take the broker's memory.
        "max_queued_messages 1000000",
    ]
    for listener in listeners:
        lines += ["", f"listener {listener.port} {listener.bind}"]
        if listener.tls is not None:
            ca, cert, key = listener.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2"]
            if listener.require_certificate:
                lines += ["require_certificate true"]
    return "\n".join(lines) + "\n"


def write_broker_config(
    sites: Sequence[Site],
    out: Path,
    listeners: Sequence[Listener],
    *,
    conf_dir: Path | None = None,
    client_ca: Path | None = None,
    simulators: bool = False,
) -> BrokerFiles:
    """Write `facmon.conf`, `passwd`, `acl` and `env/<login>.env` into `out`. `conf_dir`: where the broker finds the
    files (default `out`; another path when they are mounted elsewhere, as in a container); `client_ca`: the CA file
    as the services read it, written to their env files."""
    if any(listener.bind != "127.0.0.1" and listener.tls is None for listener in listeners):
        raise ValueError("a plain listener only on 127.0.0.1: anything else reaching the broker uses TLS")
    out = out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    env_dir = out / "env"
    env_dir.mkdir(exist_ok=True)
    env_dir.chmod(0o700)
    logins: dict[str, Login] = {}
    for role in roles(sites, simulators=simulators):
        env_file = env_dir / f"{role.user}.env"
        password = _kept_password(env_file) or secrets.token_urlsafe(24)
        _write_private(env_file, _env_text(role.user, password, client_ca))
        # The password alone too, for a Docker or systemd secret (FACMON_MQTT_PASSWORD_FILE).
        _write_private(env_dir / f"{role.user}.password", password + "\n")
        logins[role.user] = Login(role.user, password, env_file)
    password_file, acl_file, conf = out / "passwd", out / "acl", out / "facmon.conf"
    _write_private(password_file, "".join(f"{u}:{password_hash(login.password)}\n" for u, login in logins.items()))
    acl_file.write_text(acl_text(roles(sites, simulators=simulators)))
    conf.write_text(conf_text(listeners, conf_dir or out))
    return BrokerFiles(conf, password_file, acl_file, logins)
