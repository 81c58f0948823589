"""`facmon grafana publish`: the datasource and the dashboards into a running Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from facmon.shell.settings import Settings

grafana_app = typer.Typer(help="Grafana dashboards for the engineers.", no_args_is_help=True)


@grafana_app.command("publish")
def grafana_publish(
    url: Annotated[str, typer.Option(help="Grafana's address, e.g. http://localhost:3000")],
    token: Annotated[
        str | None, typer.Option(envvar="GRAFANA_TOKEN", help="service account token (else user:password in --url)")
    ] = None,
    dashboards: Annotated[Path, typer.Option(help="folder of dashboard JSON files")] = Path("grafana/dashboards"),
    influx_url: Annotated[
        str | None, typer.Option(help="InfluxDB as Grafana reaches it (default: FACMON_INFLUX_URL)")
    ] = None,
) -> None:
    """Create or update the InfluxDB datasource and every dashboard in a running Grafana (folder "facmon")."""
    from facmon.shell.grafana import InfluxSource, load_dashboards, publish_to

    settings = Settings()
    source_url = influx_url or settings.influx_url
    if not source_url:
        _fail("give --influx-url or FACMON_INFLUX_URL: the InfluxDB address Grafana queries")
    try:
        boards = load_dashboards(dashboards)
    except (OSError, ValueError) as exc:
        _fail(f"{dashboards}: {exc}")
    source = InfluxSource(source_url, settings.influx_db, settings.influx_username, settings.influx_password_text())
    done = publish_to(url, token, source, boards)
    typer.echo(f"datasource {done.datasource}, folder {done.folder}, {len(done.dashboards)} dashboard(s) published")


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)
