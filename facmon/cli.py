"""The `facmon` command. Each part of the system runs on its own, or all together with `facmon up`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from facmon.clock import SystemClock
from facmon.logs import configure
from facmon.metrics import METRICS
from facmon.settings import Settings
from facmon.site import Site, SiteFileError, load_site

app = typer.Typer(
    help="facmon: monitoring for the elevators, fire systems, gate barriers and cameras of residential estates.",
    no_args_is_help=True,
    add_completion=False,
)

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


def _settings(state_dir: Path | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"state_dir": state_dir}) if state_dir is not None else settings


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
    log_level: LogLevel = "INFO",
) -> None:
    """Run the whole system for one site: simulators, gateway, historian, rules and API."""
    configure(log_level)
    from facmon.up import up as run_up
    from notifier.tokens import InsecureSecret, check_secret
    from simulators.scenario import load_scenario

    the_site = _site(site)
    the_scenario = load_scenario(scenario) if scenario else None
    settings = _settings(state_dir)
    if settings.secret_key is not None:
        try:
            check_secret(settings.secret_key.get_secret_value().encode())
        except InsecureSecret as exc:
            _fail(f"FACMON_SECRET_KEY: {exc}")

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
    log_level: LogLevel = "INFO",
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /openapi.json)."""
    configure(log_level)
    import uvicorn

    from api.app import create_app
    from rules.db import create_schema, make_engine
    from rules.kpi_data import InfluxReader

    settings = _settings(state_dir)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url())
    create_schema(engine)
    influx = (
        InfluxReader(
            settings.influx_url,
            settings.influx_db,
            username=settings.influx_username,
            password=settings.influx_password_text(),
        )
        if settings.influx_url
        else None
    )
    from notifier.tokens import InsecureSecret, load_or_create_secret

    try:
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        ack_secret = load_or_create_secret(secret, settings.state_dir)
    except InsecureSecret as exc:
        _fail(f"FACMON_SECRET_KEY: {exc}")
    application = create_app(sites=[_site(p) for p in site], engine=engine, influx=influx, ack_secret=ack_secret)
    uvicorn.run(application, host=host, port=port, log_level=log_level.lower())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
