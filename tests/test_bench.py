"""
A smoke test that keeps the benchmark's load generator working: its own
relay server and clients, for one second, on 127.0.0.1.
"""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_loadgen_selftest(tmp_path: Path) -> None:
    """
    When the load generator runs its self-test fan-out for a second, every
    line sent is counted as delivered and none is lost.
    """
    spec = importlib.util.spec_from_file_location(
        "bench_loadgen", ROOT / "bench" / "loadgen.py"
    )
    assert spec is not None and spec.loader is not None
    loadgen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loadgen
    try:
        spec.loader.exec_module(loadgen)
        result = tmp_path / "r.json"
        code = loadgen.main(
            ["--no-uvloop", "--json", str(result), "selftest", "--users", "5",
             "--senders", "2", "--observers", "1", "--rate", "200", "--duration", "1"]
        )  # fmt: skip
    finally:
        del sys.modules[spec.name]
    report = json.loads(result.read_text())
    assert code == 0
    assert report["delivered"] == report["expected"] > 0
    assert report["lost"] == 0
