"""The temporary Prefect server a command starts when no ``PREFECT_API_URL`` is set, owned by it.

Prefect's own temporary server (``SubprocessASGIServer``) is a plain child in the command's
process group: Ctrl+C reaches it at the same moment as the run, which then cannot report its end
(minutes of connection retries and tracebacks), and a killed run leaves it behind. This one runs
the same server (uvicorn with ``prefect.server.api.server:create_app``, the UI off) but

- in its own session, so Ctrl+C to the run's process group does not reach it: the run reports
  "Crashed" to a live server and stops in seconds, then stops the server;
- told by the kernel to die with the command (``PR_SET_PDEATHSIG`` = SIGKILL, set before the
  server's code runs), so a SIGKILL of ``movierec`` takes it along;
- with its environment marked ``MOVIEREC_SERVER_OF=<pid of the command>``, so a leftover could
  be found (tests look for it).

Its start-up overlaps the command's own imports; the wait is bounded by
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (Prefect's setting, same meaning).

Which server a command records to (:func:`owned_server`): the one in ``PREFECT_API_URL`` when set;
else, unless ``PREFECT_HOME`` is set, the project's local server when ``make ui`` runs it
(``.prefect/server.pid`` alive and ``.prefect/server.url`` answering), so runs show in its UI at
once; else the temporary server
above, on the project's database (``.prefect/prefect.db``, the one ``make ui`` serves) unless
``PREFECT_HOME`` or a database URL is set - so every run, however started, lands in one history.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "OWNER_MARK",
    "PROJECT_HOME",
    "ServerStartTimeout",
    "owned_server",
    "project_server_url",
    "servers_of",
]

OWNER_MARK = "MOVIEREC_SERVER_OF"
#: The project's Prefect home: ``make ui``'s server (pid, url, log) and database.
PROJECT_HOME = Path(__file__).resolve().parents[1] / ".prefect"
_PR_SET_PDEATHSIG = 1
#: Runs first in the server's interpreter: ask for SIGKILL when the command dies, give up if it
#: already has, then become uvicorn (exec keeps the death signal).
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "owner = int(sys.argv[1])\n"
    "with __import__('contextlib').suppress(Exception):\n"
    f"    ctypes.CDLL(None).prctl({_PR_SET_PDEATHSIG}, int(signal.SIGKILL))\n"
    "if os.getppid() != owner:\n"
    "    sys.exit(0)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'uvicorn', *sys.argv[2:]])\n"
)


def project_server_url(home: Path = PROJECT_HOME) -> str | None:
    """The UI address of the project's local server (``make ui``) when it is up, else None."""
    try:
        pid = int((home / "server.pid").read_text().strip())
        os.kill(pid, 0)
        url = (home / "server.url").read_text().strip().rstrip("/")
    except (OSError, ValueError):
        return None
    import httpx

    try:
        return url if httpx.get(f"{url}/api/health", timeout=5).status_code == 200 else None
    except httpx.HTTPError:
        return None


def servers_of(owner: int) -> list[int]:
    """Process ids of live servers started by the command with process id ``owner`` (Linux /proc;
    empty elsewhere)."""
    from pathlib import Path

    mark = f"{OWNER_MARK}={owner}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if mark in environ.read_bytes().split(b"\0"):
                stat = (environ.parent / "stat").read_text()
                if stat[stat.rindex(")") + 2] != "Z":
                    found.append(int(environ.parent.name))
    return found


class ServerStartTimeout(RuntimeError):
    """The temporary server did not answer within the start-up timeout."""


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    def __init__(self, startup_timeout: float):
        self.startup_timeout = startup_timeout
        self.log = tempfile.TemporaryFile()  # unlinked at once: nothing left on disk after a kill
        self.port = _free_port()
        self.proc = self._launch()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _launch(self) -> subprocess.Popen:
        import prefect
        from prefect.settings import get_current_settings

        env = {
            **os.environ,
            **get_current_settings().to_environment_variables(exclude_unset=True),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            OWNER_MARK: str(os.getpid()),
        }
        env.pop("PREFECT_API_URL", None)
        own_database = not any(
            k in os.environ for k in ("PREFECT_HOME", "PREFECT_SERVER_DATABASE_CONNECTION_URL")
        )
        if own_database and _writable_home(PROJECT_HOME):
            env["PREFECT_HOME"] = str(PROJECT_HOME)  # the database make ui serves
        uvicorn_args = [
            "--app-dir", str(prefect.__module_path__.parent),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        return subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *uvicorn_args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        """Poll ``/health`` until it answers 200; a server that exits early (its port was taken
        meanwhile) is started again on another port."""
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    self.port = _free_port()
                    self.proc = self._launch()
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                time.sleep(0.1)
        self.log.seek(0)
        tail = self.log.read()[-2000:].decode(errors="replace").strip()
        raise ServerStartTimeout(tail)

    def stop(self) -> None:
        """SIGTERM to the server's session, then SIGKILL after 10 s."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def _writable_home(home: Path) -> bool:
    with contextlib.suppress(OSError):
        home.mkdir(exist_ok=True)
    return home.is_dir() and os.access(home, os.W_OK | os.X_OK)


@contextlib.contextmanager
def _api_url(url: str) -> Iterator[None]:
    """Point this process (and any child that reads its settings anew) at ``url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


@contextlib.contextmanager
def owned_server(
    startup_timeout: float, while_starting: Callable[[], object] = lambda: None
) -> Iterator[str | None]:
    """Run the body against the Prefect API in ``PREFECT_API_URL`` (or the active Prefect
    profile), else the project's ``make ui`` server when it is up, else a temporary server this
    process starts and stops (see the module docstring). Yields the UI address when the server
    has a UI that outlives the command (the project's server), else None. ``while_starting`` runs
    while the server boots (the caller's own imports, say)."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        while_starting()
        yield None
        return
    ui = None if "PREFECT_HOME" in os.environ else project_server_url()
    if ui:
        while_starting()
        with _api_url(f"{ui}/api"):
            try:
                yield ui
            finally:
                _drain_prefect_workers()
        return
    server = _Server(startup_timeout)
    try:
        while_starting()
        server.wait_ready()
        with _api_url(server.api_url):
            yield None
    finally:
        _drain_prefect_workers()
        server.stop()


def _drain_prefect_workers(timeout: float = 15) -> None:
    """Send the logs and events still queued to the server before it stops (else Prefect retries
    them at exit against a closed port for a minute), as Prefect's test harness does."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=timeout)
