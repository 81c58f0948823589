"""The `facmon` command. Each part of the system runs on its own, or all together with `facmon up`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import structlog
import typer
from pydantic import ValidationError

from facmon.estate.site import Site, SiteFileError, load_site
from facmon.kernel.clock import SystemClock
from facmon.kernel.datafile import validation_reasons
from facmon.kernel.metrics import Counters
from facmon.shell.broker_cli import broker_config_command
from facmon.shell.demo_history_cli import demo_history_command
from facmon.shell.grafana_cli import grafana_app
from facmon.shell.logs import configure
from facmon.shell.ops import backup_cli, db_cli, probe
from facmon.shell.reports_cli import report_app
from facmon.shell.runner import Probe
from facmon.shell.settings import Settings
from facmon.shell.users_cli import tokens_app, users_app

if TYPE_CHECKING:
    # The composition root imports every service; commands load it when they run, so `facmon --help`, `facmon
    # users` and the reports start quickly.
    from facmon.kernel.health import Service
    from facmon.shell.compose import Composer

log = structlog.get_logger(__name__)

# What builds a command's services with the composition root.
Build = Callable[["Composer"], Awaitable[Sequence["Service"]]]

app = typer.Typer(
    help="facmon: monitoring for the elevators, fire systems, gate barriers and cameras of residential estates.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(report_app, name="report")  # facmon report insurance|kpi
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(grafana_app, name="grafana")  # facmon grafana publish
app.add_typer(db_cli.app, name="db")  # facmon db upgrade|current
app.add_typer(backup_cli.app)  # facmon backup FILE, facmon restore FILE
app.command("probe")(probe.probe)
app.command("demo-history")(demo_history_command)  # facmon demo-history --site FILE [--seed N] [--days N] [--until DAY]
app.command("broker-config")(broker_config_command)  # facmon broker-config --site FILE... --out DIR [--tls-ca ...]

SiteOption = Annotated[Path, typer.Option("--site", help="site file (YAML)", exists=False)]
SitesOption = Annotated[list[Path], typer.Option("--site", help="site file(s) (YAML); repeat for several estates")]
StateOption = Annotated[
    Path | None, typer.Option("--state-dir", help="folder for local data (default: FACMON_STATE_DIR or .facmon)")
]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR")]
LogJson = Annotated[bool, typer.Option("--log-json", envvar="FACMON_LOG_JSON", help="log JSON lines")]
MetricsPort = Annotated[
    int,
    typer.Option(
        "--metrics-port",
        envvar="FACMON_METRICS_PORT",
        help="serve GET /health and GET /metrics (Prometheus) on this port; 0: not served",
        min=0,
        max=65535,
    ),
]
MetricsHost = Annotated[
    str, typer.Option("--metrics-host", envvar="FACMON_METRICS_HOST", help="address for --metrics-port")
]
DemoOption = Annotated[
    bool,
    typer.Option(
        "--demo",
        envvar="FACMON_DEMO",
        help="demo mode: simulated devices, the documented demo accounts, a generated secret key",
    ),
]


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def _site(path: Path) -> Site:
    try:
        return load_site(path)
    except SiteFileError as exc:
        _fail(f"{len(exc.problems)} problem(s) in the site file:\n" + "\n".join(f"  {p}" for p in exc.problems))


def _settings(state_dir: Path | None, demo: bool = False) -> Settings:
    overrides: dict[str, Any] = {}
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    if demo:
        overrides["demo"] = True
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        _fail("settings (FACMON_*) not usable:\n" + "\n".join(f"  {reason}" for reason in validation_reasons(exc)))


def _serve(build: Build, settings: Settings, probe: Probe | None = None) -> None:
    """Build services with the composition root and run them until SIGINT/SIGTERM (exit 0) or a failure."""
    from facmon.shell.compose import Composer, StartRefused
    from facmon.shell.local import endpoints
    from facmon.shell.runner import run_services, until_signalled

    async def main() -> None:
        metrics = Counters()
        async with Composer(settings, endpoints(settings), clock=SystemClock(), metrics=metrics) as compose:
            services = await build(compose)
            await until_signalled(run_services(services, metrics=metrics, probe=probe))

    try:
        asyncio.run(main())
    except StartRefused as exc:
        _fail(str(exc))


def _service_options(
    state_dir: StateOption = None,
    metrics_port: MetricsPort = 0,
    metrics_host: MetricsHost = "127.0.0.1",
    log_level: LogLevel = "INFO",
    log_json: LogJson = False,
) -> None:
    """The options every single-service command takes after its own (only its signature is used)."""


def _service_command(define: Callable[..., Build]) -> Callable[..., None]:
    """A command running one service: `define` takes the command's own options and returns what builds the service;
    the command adds the options of `_service_options`, configures the log first and serves with a probe."""
    shared = inspect.signature(_service_options, eval_str=True).parameters

    def command(**options: Any) -> None:
        configure(options.pop("log_level"), json_lines=options.pop("log_json"))
        settings, probe = options.pop("state_dir"), Probe(options.pop("metrics_host"), options.pop("metrics_port"))
        build = define(**options)
        _serve(build, _settings(settings), probe)

    own = inspect.signature(define, eval_str=True)
    command.__signature__ = own.replace(  # type: ignore[attr-defined]
        parameters=[*own.parameters.values(), *shared.values()], return_annotation=None
    )
    command.__annotations__ = {**define.__annotations__, **_service_options.__annotations__, "return": None}
    command.__name__, command.__qualname__, command.__doc__ = define.__name__, define.__qualname__, define.__doc__
    command.__module__ = define.__module__
    return command


@app.command("check-config")
def check_config(path: Annotated[Path, typer.Argument(help="site file to validate")]) -> None:
    """Validate a site file; every problem names the file, the entry and what is wrong."""
    site = _site(path)
    devices = sum(1 for _ in site.devices())
    typer.echo(f"{path}: OK — site {site.id!r}, {len(site.buildings)} building(s), {devices} device(s)")


@app.command()
def up(
    site: SiteOption = Path("examples/demo-site.yaml"),
    scenario: Annotated[
        Path | None, typer.Option(help="scenario file for the simulators (with --demo/--simulate)")
    ] = None,
    api_port: Annotated[int, typer.Option("--api-port", help="port of the HTTP API")] = 8080,
    api_host: Annotated[str, typer.Option("--api-host")] = "127.0.0.1",
    state_dir: StateOption = None,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="run the site's devices as simulators (implied by --demo)")
    ] = False,
    speed: Annotated[float, typer.Option(help="simulated time runs this many times faster")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the simulators' random choices")] = 0,
    demo: DemoOption = False,
    log_level: LogLevel = "INFO",
    log_json: LogJson = False,
) -> None:
    """Run every service for one site on this machine: gateway, historian, rules, notifier and API, with a local
    Mosquitto and influxd when FACMON_MQTT_HOST / FACMON_INFLUX_URL name none. Simulators only with --demo or
    --simulate."""
    configure(log_level, json_lines=log_json)
    from facmon.shell.compose import StartRefused
    from facmon.shell.up import Simulation
    from facmon.shell.up import up as run_up
    from simulators.scenario import load_scenario

    the_site = _site(site)
    settings = _settings(state_dir, demo)
    if scenario is not None and not (simulate or settings.demo):
        _fail("--scenario drives the simulators: add --simulate (or --demo)")
    simulation = None
    if simulate or settings.demo:
        simulation = Simulation(load_scenario(scenario) if scenario else None, speed=speed, seed=seed)

    def announce(text: str) -> None:
        print(text, flush=True)

    try:
        asyncio.run(
            run_up(
                the_site,
                settings,
                clock=SystemClock(),
                metrics=Counters(),
                api_host=api_host,
                api_port=api_port,
                simulation=simulation,
                announce=announce,
            )
        )
    except StartRefused as exc:
        _fail(str(exc))


@app.command()
def simulate(
    site: SiteOption,
    scenario: Annotated[Path | None, typer.Option(help="scenario file (timeline of faults and actions)")] = None,
    speed: Annotated[float, typer.Option(help="simulated time runs this many times faster")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of the simulators' random choices")] = 0,
    log_level: LogLevel = "INFO",
    log_json: LogJson = False,
) -> None:
    """Run every device of a site as its simulator: elevators and fire panels as Modbus TCP servers at their
    addresses, gate barriers and cameras publishing to the site's vendor broker (`mqtt:` in the site file) or to
    FACMON_MQTT_HOST (default 127.0.0.1)."""
    configure(log_level, json_lines=log_json)
    from facmon.shell.runner import until_signalled
    from simulators.scenario import load_scenario
    from simulators.site import SiteSimulator

    settings = _settings(None)
    sim = SiteSimulator(
        _site(site),
        scenario=load_scenario(scenario) if scenario else None,
        speed=speed,
        seed=seed,
        mqtt=settings.mqtt(),
    )
    asyncio.run(until_signalled(sim.run()))


@app.command()
@_service_command
def gateway(site: SiteOption) -> Build:
    """Poll the site's devices and publish to the MQTT broker (FACMON_MQTT_HOST), buffering through outages."""
    the_site = _site(site)

    async def build(compose: Composer) -> Sequence[Service]:
        return [compose.gateway(the_site)]

    return build


@app.command()
@_service_command
def historian(site: SitesOption) -> Build:
    """Write the site files' devices' readings and events from the MQTT backbone to InfluxDB (FACMON_INFLUX_URL),
    buffering through outages; fields their drivers do not declare, and devices no site file has, are refused."""
    sites = [_site(p) for p in site]

    async def build(compose: Composer) -> Sequence[Service]:
        return [compose.historian(sites)]

    return build


@app.command()
@_service_command
def rules(
    site: SitesOption,
    rules_overrides: Annotated[
        list[Path] | None,
        typer.Option("--rules-overrides", help="per-site overrides of state rules (peak windows, holds, SLA)"),
    ] = None,
    sla: Annotated[
        Path | None,
        typer.Option(
            "--sla",
            envvar="FACMON_SLA_FILE",
            help="SLA profiles (YAML) instead of the shipped sla.yaml: the deadlines new work orders get",
        ),
    ] = None,
) -> Build:
    """Turn backbone events into work orders (FACMON_DB_URL); their lifecycle goes to FACMON_INFLUX_URL."""
    from facmon.kernel.datafile import DataFileError
    from facmon.workorders.sla import load_sla_profiles
    from rules.engine import load_rules
    from rules.state_rules import load_state_rules

    sites = [_site(p) for p in site]
    try:
        # Every rule's profile must be in the file: a profile missing is named at start, with the file's problems.
        profiles = load_sla_profiles() if sla is None else load_sla_profiles(sla)
        event_rules = load_rules(sla_profiles=profiles)
        state_rules = load_state_rules(overrides=rules_overrides or (), sla_profiles=profiles)
    except DataFileError as exc:
        where = "" if sla is None else f" (SLA profiles from {sla})"
        _fail(f"{len(exc.problems)} problem(s) in the rules{where}:\n" + "\n".join(f"  {p}" for p in exc.problems))

    async def build(compose: Composer) -> Sequence[Service]:
        await compose.prepare_database()
        return [compose.rules(sites, state_rules, event_rules=event_rules)]

    return build


@app.command()
@_service_command
def notifier(site: SitesOption) -> Build:
    """Alert the on-call technicians of the site files' rotas about work orders and fire alarms, escalating until
    acknowledged: MQTT pushes, FACMON_WEBHOOKS and FACMON_SMTP, with one-tap acknowledge links to FACMON_PUBLIC_URL."""
    sites = [_site(p) for p in site]

    async def build(compose: Composer) -> Sequence[Service]:
        await compose.prepare_database()
        return [compose.notifier(sites)]

    return build


WORKERS_HELP = "API processes serving the port, supervised by this one (each restarted when it stops)"


@app.command()
def api(
    site: SitesOption,
    port: Annotated[int, typer.Option("--port")] = 8080,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    state_dir: StateOption = None,
    demo: DemoOption = False,
    log_level: LogLevel = "INFO",
    log_json: LogJson = False,
    workers: Annotated[int, typer.Option("--workers", envvar="FACMON_API_WORKERS", min=1, help=WORKERS_HELP)] = 1,
    worker_fd: Annotated[int | None, typer.Option("--worker-fd", hidden=True)] = None,
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /openapi.json, the technician page at /tech); its own health is at
    /api/v1/health and its metrics at /api/v1/metrics."""
    configure(log_level, json_lines=log_json)
    sites = [_site(p) for p in site]
    settings = _settings(state_dir, demo)
    if workers > 1 and worker_fd is None:
        own = [arg for path in site for arg in ("--site", str(path))]
        own += ["--port", str(port), "--host", host, "--log-level", log_level]
        own += [*(["--state-dir", str(state_dir)] if state_dir else []), *(["--demo"] if demo else [])]
        own += ["--log-json"] if log_json else []
        _supervise_api(sites, settings, own, workers)

    async def build(compose: Composer) -> Sequence[Service]:
        from facmon.shell.api_workers import long_lived

        await compose.check_start(sites)
        if worker_fd is not None:  # one of the workers of `facmon api --workers N`
            import socket

            return long_lived([compose.api(sites, host, port, sock=socket.socket(fileno=worker_fd))])
        if settings.demo:
            _demo_banner(sites)
        service = compose.api(sites, host, port)
        log.info("serving the API", url=f"{service.url}/api/v1", docs=f"{service.url}/docs")
        return long_lived([service])

    _serve(build, settings)


def _demo_banner(sites: Sequence[Site]) -> None:
    from api.accounts.bootstrap import demo_accounts, demo_banner

    typer.echo(demo_banner(demo_accounts(sites)))


def _supervise_api(sites: Sequence[Site], settings: Settings, arguments: list[str], workers: int) -> NoReturn:
    """`facmon api --workers N` (facmon.shell.api_workers)."""
    from facmon.shell.api_workers import supervise
    from facmon.shell.compose import StartRefused

    try:
        code = supervise(settings, sites, arguments, workers, banner=_demo_banner)
    except (StartRefused, OSError) as exc:
        _fail(str(exc))
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
