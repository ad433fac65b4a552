"""
A smoke test that keeps the benchmark's load generator working: its own
relay server and clients, for one second, on 127.0.0.1.
"""

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def loadgen() -> Iterator[ModuleType]:
    """
    bench/loadgen.py as a module (bench/ is not a package).
    """
    spec = importlib.util.spec_from_file_location(
        "bench_loadgen", ROOT / "bench" / "loadgen.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


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
