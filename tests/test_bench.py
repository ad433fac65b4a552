"""
A smoke test that keeps the benchmark's load generator working (its own
relay server and clients, for one second, on 127.0.0.1), and the report's
reading of a run's rounds.
"""

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def benchModule(name: str) -> Iterator[ModuleType]:
    """
    bench/<name>.py as a module (bench/ is not a package).
    """
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", ROOT / "bench" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture
def loadgen() -> Iterator[ModuleType]:
    yield from benchModule("loadgen")


@pytest.fixture
def report() -> Iterator[ModuleType]:
    yield from benchModule("report")


@pytest.mark.parametrize("proto", ["chat", "chat,web"])
def test_loadgen_selftest(loadgen: ModuleType, tmp_path: Path, proto: str) -> None:
    """
    When the load generator runs its self-test fan-out for a second, every
    line sent is counted as delivered and none is lost: with line users,
    and with half of them on the WebSocket (whose senders get their own
    lines back, which the expected count includes).
    """
    result = tmp_path / "r.json"
    code = loadgen.main(
        ["--no-uvloop", "--json", str(result), "selftest", "--users", "5",
         "--senders", "2", "--observers", "1", "--rate", "200", "--duration", "1",
         "--settle-quiet", "0.2", "--proto", proto]
    )  # fmt: skip
    report = json.loads(result.read_text())
    assert code == 0
    assert report["delivered"] == report["expected"] > 0
    assert report["lost"] == report["surplus"] == 0
    assert (report["expected_echoes"] > 0) == ("web" in proto)
    # The users' sockets say how many data segments brought those lines.
    assert 0 < report["data_segments"] <= report["delivered"]
    assert report["lines_per_segment"] >= 1


def test_web_lines_counted_across_reads(loadgen: ModuleType) -> None:
    """
    The bulk count of WebSocket room lines finds every one however the
    stream is cut into reads, a line split between two reads included, and
    counts nothing else.
    """
    long = b"y" * 200  # a frame with a 2-byte length
    frames = [
        loadgen.serverFrame(b'{"type":"line","room":"#general","text":"~1~2~3~x"}'),
        loadgen.serverFrame(b'{"type":"joined","room":"#general","name":"a"}'),
        loadgen.serverFrame(b'{"type":"line","room":"#r1","text":"' + long + b'"}'),
    ]
    stream = b"".join(frames * 3)
    for cut in range(1, len(stream)):
        total, tail = 0, b""
        for start in range(0, len(stream), cut):
            # A reused read buffer: bytes past the read's end are stale.
            read = stream[start : start + cut]
            chunk = bytearray(read + b'"type":"line"')
            count, tail = loadgen.countWebLines(tail, chunk, len(read))
            total += count
        assert total == 6, cut
    parsed, rest = loadgen.parseFrames(stream[:-1])
    assert len(parsed) == 8 and rest == frames[2][:-1]


def fanoutRun(perCPU: int, p99: float, lost: int = 0) -> dict[str, Any]:
    """
    A fan-out result at 2,000 msg/s as the load generator writes one.
    """
    return {
        "workload": "fanout",
        "offered_rate": 2000,
        "delivered_per_s": 198000,
        "lines_per_server_cpu_s": perCPU,
        "latency": {"p50_ms": 0.3, "p99_ms": p99, "max_ms": 9.0},
        "lost": lost,
        "lines_per_segment": 2.8,
        "server_cpu_us_per_segment": p99 * 4,
    }


def test_fanout_compared_round_by_round(report: ModuleType) -> None:
    """
    Each server's row is its median round, with every round's deliveries
    per CPU-second and the lines lost in all; ours against a peer is the
    median of the rounds' own ratios, not a ratio of the medians (which
    would be 700k / 800k = 0.88x here).  A result from before the rounds
    counts as round 1.
    """
    results = {
        "ours-fanout-2000": fanoutRun(600_000, 1.0),
        "ours-fanout-2000-2": fanoutRun(900_000, 2.0),
        "ours-fanout-2000-3": fanoutRun(700_000, 3.0, lost=2),
        "miniircd-fanout-2000-1": fanoutRun(400_000, 4.0),
        "miniircd-fanout-2000-2": fanoutRun(1_000_000, 5.0),
        "miniircd-fanout-2000-3": fanoutRun(800_000, 6.0),
    }
    table = report.fanoutTables(results, ["ours", "miniircd"])
    ours = next(line for line in table if line.startswith("| twisted-chat"))
    peer = next(line for line in table if line.startswith("| miniircd |"))
    assert "| 600,000 / 900,000 / 700,000 |" in ours
    assert "| 0.3 / 3.0 / 9.0 | 2 |" in ours
    assert "| 2.80 (12.0) |" in ours  # the median round's segments
    assert "| 0.3 / 6.0 / 9.0 | 0 |" in peer
    assert peer.endswith("| 0.90x (1.50 / 0.90 / 0.88) |")
