"""
A real C{redis-server} for the scale-out tests, on a free loopback port in
a temporary directory, with an append-only file so that a restart keeps the
accounts.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT = 10.0


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """
    One C{redis-server} process that a test may stop and start again on the
    same port and data directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = freePort()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """
        Stop the server (SIGTERM: it flushes its append-only file first).
        """
        if self.process is not None:
            self.process.terminate()
            self.process.wait(START_TIMEOUT)
            self.process = None


def redisAvailable() -> None:
    """
    Skip the calling test if C{redis-server} is not installed, unless
    C{TWISTED_CHAT_REQUIRE_REDIS} is set (as in CI), where it is an error.
    """
    if shutil.which("redis-server") is None:
        if os.environ.get("TWISTED_CHAT_REQUIRE_REDIS"):
            pytest.fail("redis-server is required (TWISTED_CHAT_REQUIRE_REDIS)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
