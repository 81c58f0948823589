"""Mosquitto and influxd as child processes, for `facmon up` and for the test fixtures.

Each runs on a free loopback port with its data under a folder we own, and stops with its parent. These are the
real Debian daemons; nothing here imitates them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx
import psycopg
import psycopg.sql

from facmon.kernel.ports import free_port as free_port


class ServiceError(RuntimeError):
    pass


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends it SIGTERM when we die, even by SIGKILL (a test run killed by a
    timeout, `facmon up` killed -9), so no broker or database outlives us. Linux only; elsewhere stop() does it."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def find_binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(f"{name} not found: install the Debian package (make deps does it)")


class ChildService:
    """A daemon we start, wait for, and stop. Restartable on the same port and data (for outage tests)."""

    name = "service"
    startup_timeout_s = 20.0
    # The user the daemon runs as (None: ours). The child switches before `_die_with_parent`, which runs last, so
    # the switch does not clear the parent-death signal.
    run_as: str | None = None

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        # Absolute: the daemon runs in this folder, so a relative path in its configuration would point elsewhere.
        self.workdir = workdir.absolute()
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return _port_open(self.port)

    def start(self) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # A new session: Ctrl-C at the terminal reaches us, and we stop the child in order.
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                user=self.run_as,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise ServiceError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} did not become ready on port {self.port} in {self.startup_timeout_s} s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._wait_port_free(timeout_s)

    def kill(self, timeout_s: float = 10.0) -> None:
        """SIGKILL, as a crash: nothing is saved on the way out (a fault test's broker crash)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()
        self._wait_port_free(timeout_s)

    def _wait_port_free(self, timeout_s: float) -> None:
        # The port must be free before a restart can bind it again.
        deadline = time.monotonic() + timeout_s
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> ChildService:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Mosquitto(ChildService):
    """Mosquitto on `port`. `security`: its listeners and who may do what (the text of a generated `facmon.conf`:
    logins, ACL, TLS), with `port` one of its listeners; default one plain listener on 127.0.0.1:`port` open to
    anyone, for tests of everything but security."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, *, security: str | None = None) -> None:
        super().__init__(workdir, port)
        self.security = security

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        security = self.security
        if security is None:
            # Persistent sessions keep every QoS 1 message queued while a subscriber is away (a generated
            # configuration sets its own bound).
            security = f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0"
        conf.write_text(
            "\n".join(
                [
                    security,
                    "persistence true",
                    f"persistence_location {data}/",
                    "autosave_interval 1",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    # Keep our user: a daemon that switches user loses the parent-death signal (see _die_with_parent).
                    f"user {getpass.getuser()}",
                    "",
                ]
            )
        )
        return [find_binary("mosquitto"), "-c", str(conf)]


class Influxd(ChildService):
    name = "influxd"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        # influxd also binds a backup/restore RPC port; give it its own free one.
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{self.workdir / "meta"}"

[data]
  dir = "{self.workdir / "data"}"
  wal-dir = "{self.workdir / "wal"}"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false

[monitor]
  store-enabled = false

[logging]
  level = "warn"
"""
        )
        return [find_binary("influxd"), "run", "-config", str(conf)]

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        return False


def _postgres_binary(name: str) -> str:
    """Debian keeps PostgreSQL's server programs in /usr/lib/postgresql/<major>/bin, off the PATH."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    for folder in versions:
        if os.access(folder / name, os.X_OK):
            return str(folder / name)
    raise ServiceError(f"{name} not found: install the Debian package postgresql (make deps does it)")


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user (or `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServiceError("PostgreSQL cannot run as root and there is no postgres or nobody user to run it as")


class Postgres(ChildService):
    """A PostgreSQL server of our own, for the tests and benchmarks: `initdb` on first start, then `postgres` on
    127.0.0.1:`port` with trust authentication for the user `facmon`, durability settings off (a throwaway server;
    a real centre's server is the operator's, reached by `FACMON_DB_URL`). As root, the server runs as an
    unprivileged user with its data in a folder of its own (a test's folder may not be open to that user)."""

    name = "postgres"
    user = "facmon"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.run_as = _unprivileged_user()
        if self.run_as is None:
            self.home = self.workdir / "pgdata"
        else:
            self.home = Path(tempfile.mkdtemp(prefix="facmon-postgres-"))
            shutil.chown(self.home, self.run_as, pwd.getpwnam(self.run_as).pw_gid)
            atexit.register(shutil.rmtree, self.home, True)
        self.data = self.home / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [_postgres_binary("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
             "--locale=C.UTF-8", "--no-sync"],
            capture_output=True,
            text=True,
            check=False,
            user=self.run_as,
            cwd=self.home,
        )  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stdout[-1000:]}{result.stderr[-1000:]}")

    def command(self) -> list[str]:
        self._initdb()
        return [
            _postgres_binary("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
            "-k", str(self.home), "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB",
        ]  # fmt: skip

    def ready(self) -> bool:
        if not _port_open(self.port):
            return False
        with contextlib.suppress(Exception), psycopg.connect(self._dsn("postgres"), connect_timeout=2):
            return True
        return False

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database `name` (a copy of `template` if given); its SQLAlchemy URL."""
        clause = f" TEMPLATE {psycopg.sql.Identifier(template).as_string()}" if template else ""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {psycopg.sql.Identifier(name).as_string()}{clause}".encode())
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(
                f"DROP DATABASE IF EXISTS {psycopg.sql.Identifier(name).as_string()} WITH (FORCE)".encode()
            )
