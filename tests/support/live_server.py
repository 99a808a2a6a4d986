"""A real gunicorn server with several workers, and real concurrent HTTP clients."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ServerGroup(LiveServer):
    """Several servers behind one `url()`, which hands them out in turn, as a load balancer
    would: the concurrent requests of one race reach every server (tests/conftest.py: one
    server per Galera node under `make test-galera`)."""

    def __init__(self, servers: list[LiveServer]) -> None:
        super().__init__(servers[0].base_url, servers[0].process, servers[0].log_path)
        self.servers = servers
        self._turn = itertools.count()

    def url(self, path: str) -> str:
        return self.servers[next(self._turn) % len(self.servers)].url(path)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(f"--- {server.base_url}\n{server.log_tail(lines)}" for server in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_gunicorn(env: dict[str, str], log_path: Path, workers: int = 4, timeout: float = 30) -> LiveServer:
    """gunicorn with the production settings (gunicorn.conf.py) on a free local port."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--config",
        str(PROJECT_ROOT / "gunicorn.conf.py"),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",  # a quick stop at the end of a test
        "5",
        "app:app",
    ]
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if requests.get(server.url("/health"), timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{server.log_tail()}")


def fire_concurrently(count: int, send: Callable[[int], T]) -> list[T]:
    """Run `send(i)` for i in range(count) on `count` threads released at the same instant."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait()
        return send(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))
