"""`facmon broker-config`: a Mosquitto configuration for the site files (facmon.shell.broker_config)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from facmon.estate.site import SiteFileError, load_site
from facmon.shell.broker_config import Listener, write_broker_config


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _copy_tls(ca: Path, cert: Path, key: Path, out: Path, conf_dir: Path | None) -> tuple[Path, Path, Path]:
    """The broker's TLS files copied into `out`/tls (the key readable by its owner only), as the broker finds them:
    one folder to hand to the broker or mount into its container."""
    folder = out / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    inside = (conf_dir or out.absolute()) / "tls"
    found: list[Path] = []
    for path, name in ((ca, "ca.crt"), (cert, "server.crt"), (key, "server.key")):
        if not path.is_file():
            _fail(f"no such file {path}")
        target = folder / name
        shutil.copyfile(path, target)
        target.chmod(0o600 if name == "server.key" else 0o644)
        found.append(inside / name)
    return found[0], found[1], found[2]


def broker_config_command(
    site: Annotated[list[Path], typer.Option("--site", help="site file(s) (YAML); repeat for every estate")],
    out: Annotated[Path, typer.Option("--out", help="folder to write facmon.conf, passwd, acl and env/ into")],
    tls_ca: Annotated[Path | None, typer.Option("--tls-ca", help="CA file of the broker's certificate")] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="the broker's certificate")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="the broker's private key")] = None,
    port: Annotated[int, typer.Option("--port", help="the TLS listener's port", min=1, max=65535)] = 8883,
    bind: Annotated[str, typer.Option("--bind", help="the TLS listener's address")] = "0.0.0.0",
    plain_port: Annotated[
        int | None,
        typer.Option("--plain-port", help="also a plain listener on 127.0.0.1 (e.g. 1883), for services beside it"),
    ] = None,
    require_certificate: Annotated[
        bool, typer.Option("--require-certificate", help="TLS clients must show a certificate of the CA too")
    ] = False,
    conf_dir: Annotated[
        Path | None, typer.Option("--conf-dir", help="where the broker will find these files (default: --out)")
    ] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option(
            "--client-ca", help="the CA file as the services read it, for their env files (default: --tls-ca)"
        ),
    ] = None,
) -> None:
    """Write a Mosquitto configuration for the site files: a login and an ACL per role (each estate's gateway and
    devices, historian, rules, notifier), random passwords in env files (mode 0600), nothing anonymous. Include
    `facmon.conf` from mosquitto.conf; run it again after changing the site files (passwords are kept)."""
    sites = []
    for path in site:
        try:
            sites.append(load_site(path))
        except SiteFileError as exc:
            _fail(f"{len(exc.problems)} problem(s) in {path}:\n" + "\n".join(f"  {p}" for p in exc.problems))
    tls_files = (tls_ca, tls_cert, tls_key)
    listeners = []
    if tls_ca is not None and tls_cert is not None and tls_key is not None:
        listeners.append(
            Listener(
                port,
                bind,
                tls=_copy_tls(tls_ca, tls_cert, tls_key, out, conf_dir),
                require_certificate=require_certificate,
            )
        )
    elif any(tls_files):
        _fail("--tls-ca, --tls-cert and --tls-key go together")
    if plain_port is not None:
        listeners.append(Listener(plain_port, "127.0.0.1"))
    if not listeners:
        _fail("give --tls-ca, --tls-cert and --tls-key (a TLS listener), or --plain-port (127.0.0.1 only), or both")
    the_client_ca = client_ca or (tls_ca.absolute() if tls_ca else None)
    out.mkdir(parents=True, exist_ok=True)
    files = write_broker_config(sites, out, listeners, conf_dir=conf_dir, client_ca=the_client_ca)
    typer.echo(f"wrote {files.conf}, {files.password_file}, {files.acl_file}")
    for login in files.logins.values():
        typer.echo(f"  {login.user:<32} {login.env_file}")
