"""The `facmon` command. Each part of the system runs on its own, or all together with `facmon up`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from facmon.clock import SystemClock
from facmon.demo_history.cli import demo_history_command
from facmon.logs import configure
from facmon.metrics import METRICS
from facmon.settings import Settings
from facmon.site import Site, SiteFileError, load_site
from facmon.users_cli import tokens_app, users_app
from reports.cli import report_app

app = typer.Typer(
    help="facmon: monitoring for the elevators, fire systems, gate barriers and cameras of residential estates.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(report_app, name="report")  # facmon report insurance|kpi
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.command("demo-history")(demo_history_command)  # facmon demo-history --site FILE [--seed N] [--days N] [--until DAY]

SiteOption = Annotated[Path, typer.Option("--site", help="site file (YAML)", exists=False)]
StateOption = Annotated[
    Path | None, typer.Option("--state-dir", help="folder for local data (default: FACMON_STATE_DIR or .facmon)")
]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")]


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _site(path: Path) -> Site:
    try:
        return load_site(path)
    except SiteFileError as exc:
        _fail(f"{len(exc.problems)} problem(s) in the site file:\n" + "\n".join(f"  {p}" for p in exc.problems))


DemoOption = Annotated[
    bool,
    typer.Option(
        "--demo",
        envvar="FACMON_DEMO",
        help="demo mode: create and print the documented demo accounts, generate a missing secret key",
    ),
]


def _settings(state_dir: Path | None, demo: bool = False) -> Settings:
    settings = Settings()
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir})
    return settings.model_copy(update={"demo": True}) if demo else settings


def _secret_key(settings: Settings) -> str | None:
    try:
        return settings.secret_key_text()
    except ValueError as exc:
        _fail(str(exc))


def _refuse_unsafe_start(settings: Settings, sites: list[Site]) -> None:
    """Outside demo mode: stop here, naming every problem, before any service starts."""
    if settings.demo:
        return
    from facmon.accounts.bootstrap import UnsafeStart, check_real_start
    from rules.db import create_schema, make_engine

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    try:
        create_schema(engine)
        check_real_start(engine, _secret_key(settings), sites)
    except UnsafeStart as exc:
        _fail(f"{exc}\n(to try facmon with demo accounts instead: --demo or FACMON_DEMO=1)")
    finally:
        engine.dispose()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="site file to validate")]) -> None:
    """Validate a site file; every problem names the file, the entry and what is wrong."""
    site = _site(path)
    devices = sum(1 for _ in site.devices())
    typer.echo(f"{path}: OK — site {site.id!r}, {len(site.buildings)} building(s), {devices} device(s)")


@app.command()
def up(
    site: SiteOption = Path("examples/demo-site.yaml"),
    scenario: Annotated[Path | None, typer.Option(help="scenario file for the simulators")] = None,
    api_port: Annotated[int, typer.Option("--api-port", help="port of the HTTP API")] = 8080,
    api_host: Annotated[str, typer.Option("--api-host")] = "127.0.0.1",
    state_dir: StateOption = None,
    speed: Annotated[float, typer.Option(help="simulated time runs this many times faster")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the simulators' random choices")] = 0,
    demo: DemoOption = False,
    log_level: LogLevel = "INFO",
) -> None:
    """Run the whole system for one site: simulators, gateway, historian, rules and API."""
    configure(log_level)
    from facmon.up import up as run_up
    from notifier.tokens import InsecureSecret, check_secret
    from simulators.scenario import load_scenario

    the_site = _site(site)
    the_scenario = load_scenario(scenario) if scenario else None
    settings = _settings(state_dir, demo)
    secret = _secret_key(settings)
    if secret is not None:
        try:
            check_secret(secret.encode())
        except InsecureSecret as exc:
            _fail(f"FACMON_SECRET_KEY: {exc}")
    _refuse_unsafe_start(settings, [the_site])

    def announce(text: str) -> None:
        print(text, flush=True)

    _run(
        run_up(
            the_site,
            settings,
            clock=SystemClock(),
            metrics=METRICS,
            api_host=api_host,
            api_port=api_port,
            scenario=the_scenario,
            speed=speed,
            seed=seed,
            announce=announce,
        )
    )


@app.command()
def simulate(
    site: SiteOption,
    scenario: Annotated[Path | None, typer.Option(help="scenario file (timeline of faults and actions)")] = None,
    speed: Annotated[float, typer.Option(help="simulated time runs this many times faster")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the simulators' random choices")] = 0,
    log_level: LogLevel = "INFO",
) -> None:
    """Run every device of a site as its simulator: elevators and fire panels as Modbus TCP servers at their
    addresses, gate barriers and cameras publishing to the site's vendor broker (`mqtt:` in the site file) or to
    FACMON_MQTT_HOST (default 127.0.0.1)."""
    configure(log_level)
    from simulators.scenario import load_scenario
    from simulators.site import SiteSimulator

    settings = Settings()
    sim = SiteSimulator(
        _site(site),
        scenario=load_scenario(scenario) if scenario else None,
        speed=speed,
        seed=seed,
        mqtt_host=settings.mqtt_host or "127.0.0.1",
        mqtt_port=settings.mqtt_port,
    )
    _run(sim.run())


@app.command()
def gateway(
    site: SiteOption,
    state_dir: StateOption = None,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="serve the gateway's counters at http://127.0.0.1:PORT/metrics")
    ] = 0,
    log_level: LogLevel = "INFO",
) -> None:
    """Poll the site's devices and publish to the MQTT broker (FACMON_MQTT_HOST), buffering through outages."""
    configure(log_level)
    from facmon.httpserve import embedded, metrics_app
    from gateway.site_gateway import SiteGateway

    settings = _settings(state_dir)
    gw = SiteGateway(
        _site(site),
        mqtt_host=settings.mqtt_host or "127.0.0.1",
        mqtt_port=settings.mqtt_port,
        state_dir=settings.state_dir / "gateway",
        clock=SystemClock(),
        metrics=METRICS,
        mqtt_username=settings.mqtt_username,
        mqtt_password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
    )

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(gw.run())
            if metrics_port:
                tg.create_task(embedded(metrics_app(METRICS), "127.0.0.1", metrics_port).serve_until_cancelled())

    _run(run())


@app.command()
def historian(state_dir: StateOption = None, log_level: LogLevel = "INFO") -> None:
    """Write everything on the MQTT backbone to InfluxDB (FACMON_INFLUX_URL), buffering through outages."""
    configure(log_level)
    from historian.service import Historian

    settings = _settings(state_dir)
    if settings.influx_url is None:
        _fail("set FACMON_INFLUX_URL to the InfluxDB to write to (e.g. http://127.0.0.1:8086)")
    service = Historian(
        mqtt_host=settings.mqtt_host or "127.0.0.1",
        mqtt_port=settings.mqtt_port,
        client_id="facmon-historian",
        influx_url=settings.influx_url,
        db=settings.influx_db,
        state_dir=settings.state_dir / "historian",
        metrics=METRICS,
    )
    _run(service.run())


@app.command()
def rules(
    site: Annotated[
        list[Path] | None,
        typer.Option("--site", help="site file(s): roles and time zones for the state rules, technicians' cards"),
    ] = None,
    rules_overrides: Annotated[
        list[Path] | None,
        typer.Option("--rules-overrides", help="per-site overrides of state rules (peak windows, holds, SLA)"),
    ] = None,
    state_dir: StateOption = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Turn backbone events into work orders (FACMON_DB_URL); their lifecycle goes to FACMON_INFLUX_URL."""
    configure(log_level)
    sites = [_site(p) for p in site] if site else None
    from rules.db import create_schema, make_engine
    from rules.lifecycle import InfluxLifecycleSink
    from rules.state_rules import StateRuleFileError, load_state_rules
    from rules.worker import RulesWorker

    try:
        state_rules = load_state_rules(overrides=rules_overrides or ())
    except StateRuleFileError as exc:
        _fail(f"{len(exc.problems)} problem(s) in the rules:\n" + "\n".join(f"  {p}" for p in exc.problems))

    settings = _settings(state_dir)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    create_schema(engine)
    sink = (
        InfluxLifecycleSink(
            settings.influx_url,
            settings.influx_db,
            username=settings.influx_username,
            password=settings.influx_password_text(),
        )
        if settings.influx_url
        else None
    )
    worker = RulesWorker(
        mqtt_host=settings.mqtt_host or "127.0.0.1",
        mqtt_port=settings.mqtt_port,
        client_id="facmon-rules",
        engine=engine,
        clock=SystemClock(),
        metrics=METRICS,
        lifecycle_sink=sink,
        sites=sites,
        state_rules=state_rules,
    )

    async def run() -> None:
        try:
            await worker.run()
        finally:
            if sink is not None:
                await sink.aclose()

    _run(run())


@app.command()
def api(
    site: Annotated[list[Path], typer.Option("--site", help="site file(s) whose devices the API serves")],
    port: Annotated[int, typer.Option("--port")] = 8080,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    state_dir: StateOption = None,
    demo: DemoOption = False,
    log_level: LogLevel = "INFO",
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /openapi.json, the technician page at /tech)."""
    configure(log_level)
    import uvicorn

    from api.app import create_app
    from rules.db import create_schema, make_engine
    from rules.kpi_data import InfluxReader

    settings = _settings(state_dir, demo)
    sites = [_site(p) for p in site]
    _refuse_unsafe_start(settings, sites)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    create_schema(engine)
    if settings.demo:
        from facmon.accounts.bootstrap import demo_banner, ensure_demo_accounts

        typer.echo(demo_banner(ensure_demo_accounts(engine, sites, SystemClock().now())))
    influx = InfluxReader.from_settings(settings)
    from notifier.tokens import InsecureSecret, load_or_create_secret

    try:
        ack_secret = load_or_create_secret(_secret_key(settings), settings.state_dir)
    except InsecureSecret as exc:
        _fail(f"FACMON_SECRET_KEY: {exc}")
    application = create_app(
        sites=sites,
        engine=engine,
        influx=influx,
        ack_secret=ack_secret,
        cors_origins=settings.cors_origins,
        max_body_bytes=settings.max_body_bytes,
    )
    uvicorn.run(application, host=host, port=port, log_level=log_level.lower())


# --- grafana ---------------------------------------------------------------------------------------------------------

grafana_app = typer.Typer(help="Grafana dashboards for the engineers.", no_args_is_help=True)
app.add_typer(grafana_app, name="grafana")


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
    from facmon.grafana import InfluxSource, load_dashboards, publish_to

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
