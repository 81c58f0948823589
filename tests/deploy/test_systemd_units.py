"""deploy/systemd: every unit runs facmon as its own user with the settings file, the state folder and (where the
database is used) the secret key as a credential and a schema upgrade first; restarts on failure, stops on SIGTERM,
is sandboxed; every command line is one the real CLI accepts; the environment example sets only real settings; and
`systemd-analyze verify` finds nothing to say."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from facmon.shell.settings import Settings
from tests.deploy.cli_lines import cli_problems

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
FACMON = "/opt/facmon/bin/facmon"
# Service -> the port of its /metrics and /health (the API serves /api/v1/health on its own port).
METRICS_PORTS = {"gateway": 9101, "historian": 9102, "rules": 9103, "notifier": 9104}
USES_DATABASE = {"rules", "notifier", "api"}
SERVICES = ("gateway", "historian", "rules", "notifier", "api")

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """{section: {key: [values in order]}}; systemd allows a key more than once (Environment=, ExecStartPre=)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], defaultdict(list))
            continue
        assert section is not None, f"{path.name}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        section[key.strip()].append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= given {len(values)} times: {values}"
    return values[0]


def environment(unit: Unit) -> dict[str, str]:
    pairs = [item for value in unit["Service"].get("Environment", []) for item in shlex.split(value)]
    return dict(pair.split("=", 1) for pair in pairs)


def _service(name: str) -> Unit:
    return parse_unit(UNITS / f"facmon-{name}.service")


def test_the_units_are_there() -> None:
    assert sorted(p.name for p in UNITS.glob("facmon*.service")) == sorted(f"facmon-{s}.service" for s in SERVICES)
    target = parse_unit(UNITS / "facmon.target")
    assert one(target, "Install", "WantedBy") == "multi-user.target"
    assert (UNITS / "README.md").is_file()


@pytest.mark.parametrize("name", SERVICES)
def test_a_unit_runs_facmon_as_a_service(name: str) -> None:
    unit = _service(name)
    assert one(unit, "Unit", "PartOf") == "facmon.target"
    assert one(unit, "Install", "WantedBy") == "facmon.target"
    assert "network-online.target" in one(unit, "Unit", "After").split()
    expected = {
        "User": "facmon",
        "Group": "facmon",
        "StateDirectory": "facmon",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/facmon",
    }
    assert {key: one(unit, "Service", key) for key in expected} == expected
    # The settings, then (optional, later wins) the service's own broker login of `facmon broker-config`.
    login = [f"-/etc/facmon/mqtt-{name}.env"] if name in METRICS_PORTS else []
    assert unit["Service"]["EnvironmentFile"] == ["/etc/facmon/facmon.env", *login]
    assert 5 <= int(one(unit, "Service", "TimeoutStopSec")) <= 90
    env = environment(unit)
    assert env["FACMON_STATE_DIR"] == "/var/lib/facmon"
    settings = {f"FACMON_{field.upper()}" for field in Settings.model_fields}
    assert set(env) <= settings
    start = shlex.split(one(unit, "Service", "ExecStart"))
    assert start[:2] == [FACMON, name]
    if name in METRICS_PORTS:
        assert start[start.index("--metrics-port") + 1] == str(METRICS_PORTS[name])
    else:
        assert start[start.index("--host") + 1] == "127.0.0.1", "the API sits behind a reverse proxy"
    credentials = unit["Service"].get("LoadCredential", [])
    pre = unit["Service"].get("ExecStartPre", [])
    if name in USES_DATABASE:
        assert credentials == ["secret_key:/etc/facmon/secret_key"]
        assert env["FACMON_SECRET_KEY_FILE"] == "%d/secret_key"
        assert pre == [f"{FACMON} db upgrade"]
    else:
        assert credentials == [], "only the services that sign or check acknowledge links get the key"
        assert "FACMON_SECRET_KEY_FILE" not in env
        assert pre == []


@pytest.mark.parametrize("name", SERVICES)
def test_every_command_line_is_one_the_cli_accepts(name: str) -> None:
    unit = _service(name)
    for line in [*unit["Service"].get("ExecStartPre", []), one(unit, "Service", "ExecStart")]:
        argv = shlex.split(line)
        assert argv[0] == FACMON
        assert cli_problems(argv[1:]) == [], line


def test_the_environment_example_sets_only_real_settings() -> None:
    settings = {f"FACMON_{field.upper()}" for field in Settings.model_fields}
    names = []
    for line in (UNITS / "facmon.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.append(line.split("=", 1)[0].strip())
    assert names, "the example sets something"
    assert set(names) <= settings, set(names) - settings
    assert not {"FACMON_STATE_DIR", "FACMON_SECRET_KEY", "FACMON_SECRET_KEY_FILE", "FACMON_DEMO"} & set(names), (
        "the units set the state folder and hand the key over as a credential; demo mode has no place here"
    )


def _systemd_root(tmp_path: Path) -> Path:
    """A root for `systemd-analyze verify --root`: systemd's own units (targets the facmon units refer to), the
    facmon units where an administrator installs them, and facmon's entry point at the path they run."""
    root = tmp_path / "root"
    for system_units in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if system_units.is_dir():
            shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
            break
    installed = root / "etc/systemd/system"
    installed.mkdir(parents=True)
    for unit in UNITS.glob("facmon*.*"):
        if unit.suffix in (".service", ".target"):
            shutil.copy(unit, installed)
    entry_point = Path(sys.executable).parent / "facmon"
    assert entry_point.is_file(), "the facmon command is installed beside this Python"
    (root / FACMON.lstrip("/")).parent.mkdir(parents=True)
    shutil.copy(entry_point, root / FACMON.lstrip("/"))
    return root


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    root = _systemd_root(tmp_path)
    units = [f"facmon-{s}.service" for s in SERVICES] + ["facmon.target"]
    verified = subprocess.run(
        [analyze, "verify", f"--root={root}", *units], capture_output=True, text=True, timeout=60, check=False
    )
    # Unknown keys and bad values are only warnings (exit 0): any output at all fails the test.
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")
