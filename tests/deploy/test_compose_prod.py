"""deploy/compose/docker-compose.prod.yml (no Docker engine runs here): every facmon process in its own container as
a non-root user with a health check, secrets from files, no demo and no simulators, commands the real CLI accepts,
the schema upgraded before the database services start, Mosquitto without anonymous access, InfluxDB with
authentication, and every mounted file in the repository or kept out of it on purpose. The image's entry point is
run for real."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from facmon.shell.cli import app
from facmon.shell.settings import Settings
from tests.deploy.cli_lines import cli_problems

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "deploy" / "compose"
COMPOSE: dict[str, Any] = yaml.safe_load((HERE / "docker-compose.prod.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
FACMON_SERVICES = ("migrate", "gateway", "historian", "rules", "notifier", "api")
LONG_RUNNING = FACMON_SERVICES[1:]
USES_DATABASE = ("rules", "notifier", "api")
SETTINGS = {f"FACMON_{field.upper()}" for field in Settings.model_fields}
# Files the operator makes beside the compose file (README): never in git, never in the image.
OPERATOR_FILES = ("./site.yaml", "./facmon.env", "./secrets/")
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"


def _ignored_by_git(relative: str) -> bool:
    path = HERE / relative
    found = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
    return found.returncode == 0


def test_services() -> None:
    assert set(SERVICES) == {"mosquitto", "influxdb", *FACMON_SERVICES}
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert SERVICES["influxdb"]["image"] == "influxdb:1.8"
    for name in FACMON_SERVICES:
        assert SERVICES[name]["build"]["context"] == "../..", name
        assert (HERE / "../.." / "Dockerfile").resolve().is_file()


@pytest.mark.parametrize("name", FACMON_SERVICES)
def test_a_facmon_service_runs_as_a_service_should(name: str) -> None:
    service = SERVICES[name]
    user = str(service["user"])
    assert user.split(":")[0] not in ("0", "root", "")
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    environment = service.get("environment", {})
    assert "FACMON_DEMO" not in environment
    command = service["command"]
    assert not {"--demo", "--scenario"} & set(command)
    assert command[0] not in ("up", "simulate")
    if name in LONG_RUNNING:
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "facmon", "probe"]
        port = command[command.index("--metrics-port" if "--metrics-port" in command else "--port") + 1]
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/(api/v1/)?health", test[3]), test
    if name in USES_DATABASE:
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert environment["FACMON_SECRET_KEY_FILE"] == "/run/secrets/secret_key"


def test_migrate_upgrades_once() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert "healthcheck" not in migrate, "a one-shot has nothing to probe"


@pytest.mark.parametrize("name", FACMON_SERVICES)
def test_every_command_is_one_the_cli_accepts(name: str) -> None:
    assert cli_problems(SERVICES[name]["command"]) == []


@pytest.mark.parametrize("name", FACMON_SERVICES)
def test_secrets_come_from_files(name: str) -> None:
    service = SERVICES[name]
    declared = COMPOSE["secrets"]
    granted = set(service.get("secrets", []))
    for variable, value in service.get("environment", {}).items():
        assert variable in SETTINGS or variable.removesuffix("_FILE") in SETTINGS, variable
        assert not re.search(r"PASSWORD$|SECRET_KEY$", variable), f"{variable} is set inline"
        if variable.endswith("_FILE"):
            secret = value.removeprefix("/run/secrets/")
            assert secret in granted, f"{name}: {variable} names a secret it is not given"
    for secret in granted:
        assert declared[secret]["file"].startswith("./secrets/")


def test_mosquitto_takes_the_generated_configuration(tmp_path: Path) -> None:
    """The broker's files are what `facmon broker-config` writes (README's arguments) where facmon.conf says."""
    mosquitto = SERVICES["mosquitto"]
    mounts = dict(reversed(v.split(":")[:2]) for v in mosquitto["volumes"] if v.startswith("./"))
    conf = (HERE / mounts["/mosquitto/config/mosquitto.conf"]).read_text()
    assert "include_dir /mosquitto/config/facmon" in conf.splitlines()
    assert "allow_anonymous" not in conf, "who may connect is the generated configuration's"
    assert mosquitto["ports"] == ["8883:8883"], "TLS only"
    out = tmp_path / "secrets" / "broker"
    ca = tmp_path / "ca.crt"
    ca.write_text("not read")
    ran = CliRunner().invoke(
        app,
        [
            "broker-config", "--site", "examples/demo-site.yaml", "--out", str(out),
            "--conf-dir", "/mosquitto/config/facmon", "--tls-ca", str(ca), "--tls-cert", str(ca), "--tls-key", str(ca),
        ],
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    generated = (out / "facmon.conf").read_text().splitlines()
    assert "allow_anonymous false" in generated
    broker_files = {inside: host for inside, host in mounts.items() if inside.startswith("/mosquitto/config/facmon/")}
    assert set(broker_files) == {f"/mosquitto/config/facmon/{n}" for n in ("facmon.conf", "passwd", "acl", "tls")}
    for inside, host in broker_files.items():
        name = inside.removeprefix("/mosquitto/config/facmon/")
        assert host == f"./secrets/broker/{name}"
        assert (out / name).exists(), f"broker-config writes {name}"
    for named in ("password_file /mosquitto/config/facmon/passwd", "acl_file /mosquitto/config/facmon/acl"):
        assert named in generated
    assert "cafile /mosquitto/config/facmon/tls/ca.crt" in generated
    for name in LONG_RUNNING:
        if name == "api":
            continue
        env = SERVICES[name]["environment"]
        assert env["FACMON_MQTT_TLS_CA"] == "/run/secrets/mqtt_ca"
        assert env["FACMON_MQTT_PORT"] == "8883"
    users = {SERVICES[n]["environment"]["FACMON_MQTT_USERNAME"] for n in LONG_RUNNING if n != "api"}
    assert len(users) == 4, "one broker login per service"
    passwords = {COMPOSE["secrets"][f"mqtt_{n}_password"]["file"] for n in ("historian", "rules", "notifier")}
    assert passwords == {f"./secrets/broker/env/{n}.password" for n in ("historian", "rules", "notifier")}


def test_influxdb_has_authentication_and_a_facmon_user() -> None:
    influxdb = SERVICES["influxdb"]
    env = influxdb["environment"]
    assert env["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert env["INFLUXDB_ADMIN_USER"]
    assert not any(name.endswith("PASSWORD") for name in env), "passwords come from secrets"
    script = " ".join(influxdb["entrypoint"])
    for variable, secret in (
        ("INFLUXDB_ADMIN_PASSWORD", "influxdb_admin_password"),
        ("INFLUXDB_USER_PASSWORD", "influxdb_password"),
    ):
        assert f'{variable}="$$(cat /run/secrets/{secret})"' in script
        assert secret in influxdb["secrets"]
    for name in ("historian", "rules", "api"):
        facmon_env = SERVICES[name]["environment"]
        assert facmon_env["FACMON_INFLUX_USERNAME"] == env["INFLUXDB_USER"]
        assert facmon_env["FACMON_INFLUX_DB"] == env["INFLUXDB_DB"]
        assert facmon_env["FACMON_INFLUX_URL"] == "http://influxdb:8086"


def test_mounted_files_are_in_the_repository_or_kept_out_of_it() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if not host.startswith("./"):
                continue
            if host.startswith(OPERATOR_FILES):
                assert _ignored_by_git(host), f"{name}: {host} is the operator's, kept out of git"
            else:
                assert (HERE / host).is_file(), f"{name}: {host}"
        env_file = service.get("env_file")
        if env_file:
            assert env_file in OPERATOR_FILES
            assert (HERE / (env_file + ".example")).is_file()
    for secret in COMPOSE["secrets"].values():
        assert _ignored_by_git(secret["file"])
    docker_ignored = (ROOT / ".dockerignore").read_text().split()
    for path in OPERATOR_FILES:
        assert f"deploy/compose/{path.removeprefix('./').rstrip('/')}" in docker_ignored, "never baked into an image"


def test_the_settings_example_sets_only_real_settings() -> None:
    names = [
        line.split("=", 1)[0]
        for line in (HERE / "facmon.env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert names
    assert set(names) <= SETTINGS
    assert "FACMON_DEMO" not in names


def _instruction(dockerfile: str, name: str) -> str:
    found = re.findall(rf"^{name} (.+)$", dockerfile, re.MULTILINE)
    assert len(found) == 1, f"one {name}"
    return str(found[0])


def test_the_image_runs_as_facmon_without_the_demo() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert _instruction(dockerfile, "USER") == "10001:10001"
    assert "useradd --system --uid 10001" in dockerfile
    assert "FACMON_DEMO" not in dockerfile
    command = json.loads(_instruction(dockerfile, "CMD"))
    assert command[0] == "api"
    assert cli_problems(command) == []
    entrypoint = json.loads(_instruction(dockerfile, "ENTRYPOINT"))
    assert entrypoint == ["/bin/sh", "/opt/facmon/" + str(ENTRYPOINT.relative_to(ROOT))]
    assert "demo" in (ROOT / "docker-compose.yml").read_text().splitlines()[0].lower(), "the top-level file is the demo"


def _entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACMON_")}
    # The image has facmon on PATH; here it is beside this Python.
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=base | env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_entry_point_reads_settings_from_files(tmp_path: Path) -> None:
    database = tmp_path / "from-a-secret.db"
    secret = tmp_path / "db_url"
    secret.write_text(f"sqlite:///{database}\n")
    ran = _entrypoint("db", "current", env={"FACMON_DB_URL_FILE": str(secret), "FACMON_STATE_DIR": str(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    assert f"database: sqlite:///{database}\n" in ran.stdout
    both = _entrypoint("db", "current", env={"FACMON_DB_URL_FILE": str(secret), "FACMON_DB_URL": "sqlite://"})
    assert both.returncode == 2
    assert "both FACMON_DB_URL and FACMON_DB_URL_FILE are set" in both.stderr
    missing = _entrypoint("db", "current", env={"FACMON_MQTT_PASSWORD_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 2
    assert shlex.quote(str(tmp_path / "nope")) in missing.stderr
