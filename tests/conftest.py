"""
Shared pytest configuration: pytest-twisted runs the reactor for the
integration tests; unit tests use string transports and fake clocks.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from redisserver import RedisServer, redisAvailable


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """
    A real redis-server on a free loopback port, stopped after the test.
    """
    redisAvailable()
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
