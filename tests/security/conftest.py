"""A real Mosquitto with the configuration `facmon broker-config` writes: TLS with a CA and certificates `openssl`
makes here, a login and an ACL per role, and nothing anonymous.

The server certificate names `localhost` only, so a client reaching the broker as 127.0.0.1 fails the hostname
check; a second CA signs nothing the broker shows, so a client trusting only it fails the chain.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from facmon.estate.site import Site
from facmon.kernel.daemons import Mosquitto, free_port
from facmon.kernel.mqtt import MqttSettings
from facmon.shell.broker_config import BrokerFiles, Listener, password_hash, write_broker_config

# A login the tests read every topic with (dead letters, forged events), beside the generated ones.
OBSERVER = "observer"
OBSERVER_PASSWORD = "observer-password-for-tests"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip


def _signed(folder: Path, name: str, ca: str, extensions: str) -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    (folder / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=folder,
    )  # fmt: skip


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    _ca(folder, "facmon-ca")
    _ca(folder, "other-ca")
    _signed(folder, "server", "facmon-ca", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _signed(folder, "client", "facmon-ca", "extendedKeyUsage=clientAuth\n")
    return Pki(
        ca=folder / "facmon-ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.crt",
    )


def two_sites(tag: str) -> list[Site]:
    """Estates A and B of one broker, each with an elevator, a second car and a gate; technician B's card."""

    def modbus(device: str, unit: int) -> dict[str, object]:
        address = {"host": "127.0.0.1", "port": 1502, "unit": unit}
        return {"id": device, "kind": "elevator", "model": "elev-gb-a", "role": "main", "address": address}

    def site(name: str) -> Site:
        return Site.model_validate(
            {
                "site": {"id": f"{tag}-{name}"},
                "buildings": [
                    {
                        "id": "b1",
                        "devices": [
                            modbus("e1", 1),
                            modbus("e2", 2),
                            {"id": "g1", "kind": "gate", "model": "barrier-a", "vendor_id": f"{tag}-{name}-g1"},
                        ],
                    }
                ],
                "technicians": [
                    {
                        "id": f"tech-{name}",
                        "name": f"Technician {name}",
                        "phone": "+86 138 0000 0000",
                        "cards": ["0A1B2C3D" if name == "b" else "0A0A0A0A"],
                        "disciplines": ["elevator"],
                    }
                ],
            }
        )

    return [site("a"), site("b")]


@dataclass(frozen=True)
class SecureBroker:
    mosquitto: Mosquitto
    files: BrokerFiles
    pki: Pki
    plain_port: int  # the plain listener on 127.0.0.1 (logins and ACL all the same)

    @property
    def port(self) -> int:
        return self.mosquitto.port

    def login(self, user: str, *, host: str = "localhost") -> MqttSettings:
        """TLS as `user` (a generated login, or OBSERVER), trusting the broker's CA."""
        password = OBSERVER_PASSWORD if user == OBSERVER else self.files.logins[user].password
        return MqttSettings(host, self.port, username=user, password=password, tls_ca=str(self.pki.ca))

    def plain(self, settings: MqttSettings) -> MqttSettings:
        return replace(settings, host="127.0.0.1", port=self.plain_port, tls=False, tls_ca=None)


@contextlib.contextmanager
def secure_broker_for(folder: Path, pki: Pki, sites: list[Site], *, simulators: bool = False) -> Iterator[SecureBroker]:
    """Mosquitto with the generated configuration of `sites` (TLS on a free port, a plain one on 127.0.0.1), plus
    the tests' observer."""
    tls_port, plain_port = free_port(), free_port()
    listeners = [
        Listener(tls_port, "0.0.0.0", tls=(pki.ca, pki.server_cert, pki.server_key)),
        Listener(plain_port, "127.0.0.1"),
    ]
    files = write_broker_config(sites, folder / "broker", listeners, client_ca=pki.ca, simulators=simulators)
    with files.password_file.open("a") as passwd:
        passwd.write(f"{OBSERVER}:{password_hash(OBSERVER_PASSWORD)}\n")
    with files.acl_file.open("a") as acl:
        acl.write(f"user {OBSERVER}\ntopic read #\n")
    broker = Mosquitto(folder / "mosquitto", port=tls_port, security=files.conf.read_text())
    broker.start()
    try:
        yield SecureBroker(broker, files, pki, plain_port)
    finally:
        broker.stop()


@pytest.fixture
def secure_broker(tmp_path: Path, pki: Pki, topic_prefix: str) -> Iterator[SecureBroker]:
    with secure_broker_for(tmp_path, pki, two_sites(topic_prefix)) as broker:
        yield broker
