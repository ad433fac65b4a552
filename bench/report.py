"""
Turn one run directory of ``bench/run.sh`` (one JSON file per workload run)
into ``bench/RESULTS.md`` and a plot of p99 latency against offered rate.

    python bench/report.py bench/out/run-<time> --results bench/RESULTS.md \
        --plot bench/p99_vs_rate.png

Kept apart from the generator so that the figures can be re-rendered from
raw results without measuring again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ORDER = ["ours", "words", "miniircd", "ngircd", "inspircd"]
NAMES = {
    "ours": "twisted-chat (ours)",
    "words": "twisted.words",
    "miniircd": "miniircd",
    "ngircd": "ngircd",
    "inspircd": "InspIRCd",
    "hub": "scale-out over Redis (hub)",
    "ours-irc": "twisted-chat (ours), IRC clients",
    "frontends": "front-ends (line, IRC, web)",
}
# The IRC servers, which ours with IRC clients is compared with.
IRC_PEERS = ["words", "miniircd", "ngircd", "inspircd"]
# The front-ends section's workloads, in table order, and what each is.
FRONTENDS = {
    "line": "all line",
    "mixed": "half line, half IRC",
    "irc": "all IRC",
    "web": "all web",
    "all3": "line, IRC and web",
    "rooms": "all line, rooms",
    "rooms-mixed": "half line, half IRC, rooms",
    "rooms-irc": "all IRC, rooms",
    "rooms-web": "all web, rooms",
    "line-long": "all line, lines as long as web's frames",
}
# Workloads run beside the front-ends as a control, not a front-end of
# their own (no target): all-line with web's bytes on the wire, which all-web
# is also divided by.
CONTROLS = {"line-long": "web"}
PROTO_NAMES = {"chat": "line", "irc": "IRC", "web": "web"}
# The issues' target: no front-end more than this far behind the line
# protocol in deliveries per server CPU-second (the same workload, all-line).
FRONTEND_TARGET = 0.8
# The target for the hub: with this many nodes at this offered rate,
# at least this share of the single node's deliveries per CPU-second and a
# p99 under this many ms.
HUB_TARGET = {"nodes": 3, "rate": 2000, "share": 0.8, "p99_ms": 20.0}


def load(directory: Path) -> dict[str, dict[str, Any]]:
    """
    Every result of the run, by file stem.
    """
    results = {}
    for path in sorted(directory.glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text())
        except ValueError:
            continue
    return results


def fmt(value: Any, digits: int = 0) -> str:
    """
    A number for a table: thousands separated, or a dash when missing.
    """
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, int | float):
        return f"{round(value):,}"
    return str(value)


def ratio(ours: Any, theirs: Any, higherIsBetter: bool = True) -> str:
    """
    How many times better ours is (>1 means ours wins).
    """
    if not ours or not theirs:
        return "-"
    value = ours / theirs if higherIsBetter else theirs / ours
    return f"{value:.2f}x"


def machine() -> list[str]:
    """
    Cores, CPU model, kernel, Python and the versions of what was compared.
    """
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for package in ("Twisted", "uvloop", "argon2-cffi", "miniircd"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} not installed")
    for command in (["ngircd", "--version"], ["inspircd", "--version"]):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=10)
            first = (out.stdout or out.stderr).splitlines()[0]
            versions.append(first.split("-")[0].strip())
        except (OSError, IndexError, subprocess.SubprocessError):
            versions.append(f"{command[0]} not installed")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return [
        f"- cores: {os.cpu_count()} ({model}); kernel {platform.release()}",
        f"- load average when the report was written: {load} (anything above "
        "about 2 means other processes shared the cores and the figures are "
        "not clean)",
        f"- Python {platform.python_version()}; " + ", ".join(versions),
    ]


def fanoutResults(
    results: dict[str, dict[str, Any]],
) -> dict[str, dict[int, dict[int, dict[str, Any]]]]:
    """
    The peers' fan-out results (C{<peer>-fanout-<rate>-<round>}, ours with IRC
    clients as the peer C{ours-irc}; a run from before the rounds,
    C{<peer>-fanout-<rate>}, counts as round 1), by peer, rate and round.
    """
    table: dict[str, dict[int, dict[int, dict[str, Any]]]] = {}
    for key, result in results.items():
        found = re.fullmatch(r"(.+)-fanout-(\d+)(?:-(\d+))?", key)
        if found is None or result.get("workload") != "fanout":
            continue
        peer, rate, round_ = found[1], int(found[2]), int(found[3] or 1)
        table.setdefault(peer, {}).setdefault(rate, {})[round_] = result
    return table


def versusRounds(
    ours: dict[int, dict[str, Any]], theirs: dict[int, dict[str, Any]]
) -> str:
    """
    Ours against another server in deliveries per server CPU-second: the
    median of the rounds' ratios (each round's ours over its in the same
    round), then each round's.
    """
    ratios = perCPURatios(ours, theirs)
    if not ratios:
        return "-"
    median = f"{statistics.median(ratios):.2f}x"
    return median if len(ratios) == 1 else f"{median} ({joined(ratios, 2)})"


def rateOrder(rates: Any) -> list[int]:
    """
    The offered rates in increasing order, "as fast as it takes" (0) last.
    """
    return sorted(rates, key=lambda r: (r == 0, r))


# What each data segment to a user carried and cost (read from the users'
# sockets, TCP_INFO): for the same lines, fewer segments are fewer sends.
SEGMENTS_HEADER = "lines per data segment (server CPU us per segment)"


def fanoutTables(results: dict[str, dict[str, Any]], peers: list[str]) -> list[str]:
    """
    One table per offered rate: peers side by side (each its median round),
    and ours against each, round by round.
    """
    lines: list[str] = []
    fanout = fanoutResults(results)
    rates = rateOrder({rate for peer in peers for rate in fanout.get(peer, {})})
    for rate in rates:
        title = (
            f"### Offered {rate:,} msg/s ({rate * 99:,} deliveries/s)"
            if rate
            else "### As fast as the server takes them (window of messages in flight)"
        )
        lines += [
            title,
            "",
            "| server | delivered lines/s | lines per server CPU-s, each round | "
            f"server CPU | {SEGMENTS_HEADER} | p50 / p99 / max ms | "
            "lost (not in after 10 s drain) | "
            "generator CPU | ours vs it (lines/CPU-s): median (each round) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ours = fanout.get("ours", {}).get(rate, {})
        for peer in peers:
            rounds = fanout.get(peer, {}).get(rate)
            if rounds:
                versus = "-" if peer == "ours" else versusRounds(ours, rounds)
                lines.append(fanoutRow(NAMES[peer], rounds, versus))
        lines.append("")
    return lines


def fanoutRow(name: str, rounds: dict[int, dict[str, Any]], versus: str) -> str:
    """
    One server's row of a fan-out table: its median round's figures, every
    round's deliveries per CPU-second, the lines lost in all rounds, and
    C{versus} at the end.
    """
    errors = [r["error"] for r in rounds.values() if "error" in r]
    if errors:
        return f"| {name} | error: {errors[0]} ||||||||"
    r = medianRound(rounds)
    lat = r.get("latency", {})
    flag = " (generator-bound)" if r.get("generator_bound") else ""
    perCPU = [q.get("lines_per_server_cpu_s") for _, q in sorted(rounds.items())]
    lost = sum(q.get("lost") or 0 for q in rounds.values())
    return (
        f"| {name} | {fmt(r.get('delivered_per_s'))}{flag} | "
        f"{joined(perCPU)} | "
        f"{fmt((r.get('server_cpu_util') or 0) * 100)}% | "
        f"{fmt(r.get('lines_per_segment'), 2)} "
        f"({fmt(r.get('server_cpu_us_per_segment'), 1)}) | "
        f"{fmt(lat.get('p50_ms'), 1)} / {fmt(lat.get('p99_ms'), 1)} / "
        f"{fmt(lat.get('max_ms'), 1)} | {fmt(lost)} | "
        f"{fmt((r.get('gen_cpu_util') or 0) * 100)}% | {versus} |"
    )


def ircTables(results: dict[str, dict[str, Any]], peers: list[str]) -> list[str]:
    """
    One table per offered rate: ours with IRC clients (its IRC front-end)
    beside the IRC servers, and ours against each; under it, ours with IRC
    clients against ours with line clients at that rate.
    """
    lines: list[str] = []
    fanout = fanoutResults(results)
    for rate in rateOrder(fanout.get("ours-irc", {})):
        ours = fanout["ours-irc"][rate]
        title = (
            f"### IRC clients, offered {rate:,} msg/s"
            if rate
            else "### IRC clients, as fast as the server takes them"
        )
        lines += [
            title,
            "",
            "| server | delivered lines/s | lines per server CPU-s, each round | "
            f"server CPU | {SEGMENTS_HEADER} | p50 / p99 / max ms | lost | "
            "generator CPU | ours (IRC) vs it (lines/CPU-s): median (each round) |",
            "|---|---|---|---|---|---|---|---|---|",
            fanoutRow(NAMES["ours-irc"], ours, "-"),
        ]
        for peer in (p for p in IRC_PEERS if p in peers):
            rounds = fanout.get(peer, {}).get(rate)
            if rounds:
                lines.append(fanoutRow(NAMES[peer], rounds, versusRounds(ours, rounds)))
        shares = perCPURatios(ours, fanout.get("ours", {}).get(rate, {}))
        if shares:
            line = medianRound(fanout["ours"][rate])
            lines += [
                "",
                f"Ours with line clients at this rate: "
                f"{fmt(line.get('lines_per_server_cpu_s'))} lines per server CPU-s "
                f"(median round); with IRC clients: "
                + (
                    f"{shares[0]:.0%} of it."
                    if len(shares) == 1
                    else f"{statistics.median(shares):.0%} of it (median of the "
                    f"rounds, each against line clients in the same round: "
                    f"{joined([100 * s for s in shares])}%)."
                ),
            ]
        lines.append("")
    return lines


def frontendResults(
    results: dict[str, dict[str, Any]],
) -> dict[int, dict[str, dict[int, dict[str, Any]]]]:
    """
    The front-ends section's results (C{frontends-<workload>-<rate>-<round>}),
    by rate, workload and round.
    """
    table: dict[int, dict[str, dict[int, dict[str, Any]]]] = {}
    for key, result in results.items():
        if not key.startswith("frontends-") or result.get("workload") != "fanout":
            continue
        parts = key[len("frontends-") :].rsplit("-", 2)
        if len(parts) != 3:
            continue
        try:
            rate, round_ = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        table.setdefault(rate, {}).setdefault(parts[0], {})[round_] = result
    return table


def frontendBase(workload: str) -> str | None:
    """
    The workload a front-ends workload is compared with: all-line, or for
    another front-end in rooms, all-line in the same rooms (none for
    all-line itself).
    """
    if workload == "line":
        return None
    return "rooms" if workload.startswith("rooms-") else "line"


def users(result: dict[str, Any]) -> str:
    """
    How many users of each front-end a run had, and in how many rooms.
    """
    split = result.get("users_by_proto") or {}
    text = " + ".join(f"{count} {PROTO_NAMES.get(p, p)}" for p, count in split.items())
    rooms = result.get("rooms")
    return f"{text or fmt(result.get('users'))}" + (f", {rooms} rooms" if rooms else "")


def perCPURatios(
    runs: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]]
) -> list[float]:
    """
    Each round's deliveries per server CPU-second over those of the base
    workload in the same round (the two ran one after the other).
    """
    ratios = []
    for round_, r in sorted(runs.items()):
        b = base.get(round_, {})
        mine, theirs = r.get("lines_per_server_cpu_s"), b.get("lines_per_server_cpu_s")
        if mine and theirs:
            ratios.append(mine / theirs)
    return ratios


def joined(values: list[Any], digits: int = 0) -> str:
    """
    One figure per round, separated by slashes.
    """
    return " / ".join(fmt(v, digits) for v in values) if values else "-"


def frontendTables(results: dict[str, dict[str, Any]]) -> list[str]:
    """
    One table per offered rate: every front-ends workload, each round's
    figures, and each against all-line (or the rooms against all-line in
    rooms) of the same round; the issues' target under it.
    """
    lines: list[str] = []
    for rate, workloads in sorted(frontendResults(results).items()):
        lines += [
            f"### Offered {rate:,} msg/s",
            "",
            "| workload | users | delivered lines/s | deliveries per server CPU-s "
            "(each round) | server CPU | p50 ms | p99 ms | lost | generator CPU | "
            "÷ base, each round (median) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        order = [w for w in FRONTENDS if w in workloads] + sorted(
            w for w in workloads if w not in FRONTENDS
        )
        checks = []
        for workload in order:
            runs = workloads[workload]
            ordered = [r for _, r in sorted(runs.items())]
            errors = [r["error"] for r in ordered if "error" in r]
            name = FRONTENDS.get(workload, workload)
            if errors:
                lines.append(f"| {name} | error: {errors[0]} |||||||||")
                continue
            first = ordered[0]
            base = frontendBase(workload)
            versus = "-"
            ratios: list[float] = []
            if base is not None and base in workloads:
                ratios = perCPURatios(runs, workloads[base])
                if ratios:
                    versus = (
                        f"{joined(ratios, 2)} ({statistics.median(ratios):.2f}) "
                        f"÷ {FRONTENDS[base]}"
                    )
            bound = any(r.get("generator_bound") for r in ordered)
            lat = [r.get("latency", {}) for r in ordered]
            lines.append(
                f"| {name} | {users(first)} | "
                f"{joined([r.get('delivered_per_s') for r in ordered])}"
                f"{' (generator-bound)' if bound else ''} | "
                f"{joined([r.get('lines_per_server_cpu_s') for r in ordered])} | "
                + joined([(r.get("server_cpu_util") or 0) * 100 for r in ordered])
                + "% | "
                f"{joined([x.get('p50_ms') for x in lat], 1)} | "
                f"{joined([x.get('p99_ms') for x in lat], 1)} | "
                f"{fmt(sum(r.get('lost') or 0 for r in ordered))} | "
                + joined([(r.get("gen_cpu_util") or 0) * 100 for r in ordered])
                + f"% | {versus} |"
            )
            # Another front-end against the line protocol, in the same
            # workload (the rooms against all-line are a different load).
            if ratios and workload != "rooms" and workload not in CONTROLS:
                checks.append((name, statistics.median(ratios)))
        lines.append("")
        for control, workload in CONTROLS.items():
            if control in workloads and workload in workloads:
                ratios = perCPURatios(workloads[workload], workloads[control])
                if ratios:
                    lines += [
                        f"{FRONTENDS[workload].capitalize()} ÷ "
                        f"{FRONTENDS[control]} (the same bytes on the wire), "
                        f"each round (median): {joined(ratios, 2)} "
                        f"({statistics.median(ratios):.2f}).",
                        "",
                    ]
        if checks:
            verdicts = ", ".join(
                f"{name} {share:.1%} "
                f"({'met' if share >= FRONTEND_TARGET else 'not met'})"
                for name, share in checks
            )
            lines += [
                f"Target (no front-end more than {1 - FRONTEND_TARGET:.0%} behind "
                "the line protocol: deliveries per server CPU-second at least "
                f"{FRONTEND_TARGET:.0%} of all-line's, median over the rounds): "
                f"{verdicts}.",
                "",
            ]
    return lines


def hubSetup(nodes: int) -> str:
    """
    The name of one hub configuration in the tables.
    """
    if nodes == 0:
        return "1 node, no hub"
    return f"{nodes} node{'s' if nodes > 1 else ''} on one Redis"


def hubCPU(result: dict[str, Any]) -> str:
    """
    The CPU of the nodes (in all, and each) and of Redis during a run.
    """
    processes = result.get("server_processes") or []
    if any(p.get("cpu_util") is None for p in processes) or not processes:
        return "-"
    nodes = [p["cpu_util"] for p in processes if not redisProcess(p)]
    redis = [p["cpu_util"] for p in processes if redisProcess(p)]
    text = f"{fmt(sum(nodes) * 100)}%"
    if len(nodes) > 1:
        text += " (" + " + ".join(fmt(u * 100) for u in nodes) + ")"
    return text + (f" / {fmt(sum(redis) * 100)}%" if redis else " / -")


def redisProcess(process: dict[str, Any]) -> bool:
    return str(process.get("name") or "").startswith("redis")


def hubResults(
    results: dict[str, dict[str, Any]],
) -> dict[int, dict[int, dict[int, dict[str, Any]]]]:
    """
    The hub section's fan-out results (C{hub-<nodes>-<rate>-<round>}; a run
    from before the rounds, C{hub-<nodes>-<rate>}, counts as round 1), by
    rate, number of nodes (0: one node without a hub) and round.
    """
    table: dict[int, dict[int, dict[int, dict[str, Any]]]] = {}
    for key, result in results.items():
        parts = key.split("-")
        if parts[0] != "hub" or len(parts) not in (3, 4):
            continue
        if result.get("workload") != "fanout":
            continue
        try:
            nodes, rate = int(parts[1]), int(parts[2])
            round_ = int(parts[3]) if len(parts) == 4 else 1
        except ValueError:
            continue
        table.setdefault(rate, {}).setdefault(nodes, {})[round_] = result
    return table


def medianRound(rounds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """
    The round whose deliveries per server CPU-second are the median (the
    lower of the middle two for an even count), whose other figures stand
    for the setup in the tables.
    """
    ordered = sorted(
        rounds.values(), key=lambda r: r.get("lines_per_server_cpu_s") or 0
    )
    return ordered[(len(ordered) - 1) // 2]


def hubTables(results: dict[str, dict[str, Any]]) -> list[str]:
    """
    One table per offered rate: one node without a hub, then 1, 2, 3 nodes
    on one Redis, each round against the first in the same round.
    """
    lines: list[str] = []
    for rate, runs in sorted(hubResults(results).items()):
        lines += [
            f"### Offered {rate:,} msg/s",
            "",
            "| setup | delivered lines/s | deliveries per CPU-s (nodes + Redis), "
            "each round | CPU nodes (each) / Redis | p50 / p99 / max ms | lost | "
            "generator CPU | ÷ 1 node without hub: deliveries per CPU-s, each "
            "round (median) / p50 / p99 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        single = runs.get(0, {})
        base = medianRound(single) if single else {}
        base_lat = base.get("latency", {})
        for nodes, rounds in sorted(runs.items()):
            errors = [r["error"] for r in rounds.values() if "error" in r]
            if errors:
                lines.append(f"| {hubSetup(nodes)} | error: {errors[0]} |||||||")
                continue
            r = medianRound(rounds)
            lat = r.get("latency", {})
            flag = " (generator-bound)" if r.get("generator_bound") else ""
            if coreSaturated(r):
                flag += " (server core saturated)"
            perCPU = [
                q.get("lines_per_server_cpu_s") for _, q in sorted(rounds.items())
            ]
            versus = "-"
            ratios = perCPURatios(rounds, single)
            if nodes and ratios:
                versus = " / ".join(
                    (
                        f"{joined(ratios, 2)} ({statistics.median(ratios):.2f})",
                        ratio(lat.get("p50_ms"), base_lat.get("p50_ms")),
                        ratio(lat.get("p99_ms"), base_lat.get("p99_ms")),
                    )
                )
            lost = sum(q.get("lost") or 0 for q in rounds.values())
            lines.append(
                f"| {hubSetup(nodes)} | {fmt(r.get('delivered_per_s'))}{flag} | "
                f"{joined(perCPU)} | {hubCPU(r)} | "
                f"{fmt(lat.get('p50_ms'), 1)} / {fmt(lat.get('p99_ms'), 1)} / "
                f"{fmt(lat.get('max_ms'), 1)} | {fmt(lost)} | "
                f"{fmt((r.get('gen_cpu_util') or 0) * 100)}% | {versus} |"
            )
        lines += ["", *hubTarget(rate, runs)]
    return lines


def hubTarget(rate: int, runs: dict[int, dict[int, dict[str, Any]]]) -> list[str]:
    """
    Whether the issue's target is met, under the table of its rate: the
    median over the rounds of each round's share, the worst p99 of any
    round, nothing lost in any.
    """
    goal = HUB_TARGET
    rounds, single = runs.get(int(goal["nodes"])), runs.get(0)
    if rate != goal["rate"] or not rounds or not single:
        return []
    ratios = perCPURatios(rounds, single)
    p99s = [q.get("latency", {}).get("p99_ms") for q in rounds.values()]
    if not ratios or None in p99s:
        return []
    share, p99 = statistics.median(ratios), max(p99s)
    lost = sum(q.get("lost") or 0 for q in rounds.values())
    met = share >= goal["share"] and p99 < goal["p99_ms"] and not lost
    saturated = (
        " In some round the nodes and Redis used 90% or more of their one "
        "core: the core was saturated, so deliveries per CPU-second could not "
        "exceed the delivered rate, and that round's share is a floor."
        if any(coreSaturated(q) for q in rounds.values())
        else ""
    )
    return [
        f"Target ({goal['nodes']} nodes at {rate:,} msg/s: at least "
        f"{goal['share']:.0%} of the single node's deliveries per CPU-second, "
        f"p99 under {goal['p99_ms']:g} ms, nothing lost): {share:.1%} (median "
        f"of {len(ratios)} round{'s' if len(ratios) > 1 else ''}), worst p99 "
        f"{p99:.1f} ms, {fmt(lost)} lost: "
        f"**{'met' if met else 'not met'}**.{saturated}",
        "",
    ]


def coreSaturated(result: dict[str, Any]) -> bool:
    """
    Whether the server processes of a run, all pinned to one core, used 90%
    of it or more: then the core, not the software, set the figure.
    """
    return (result.get("server_cpu_util") or 0) >= 0.9


def marginal(result: dict[str, Any]) -> float | None:
    """
    The marginal RSS per session, only when every session asked for got in
    (otherwise the second half is a handful of sessions and means nothing).
    """
    if result.get("logged_in") != result.get("users"):
        return None
    value = result.get("rss_per_session_marginal_kib")
    return float(value) if value is not None else None


def idleTable(results: dict[str, dict[str, Any]], peers: list[str]) -> list[str]:
    """
    Idle sessions: RSS per session and CPU while idle.
    """
    lines = [
        "| server | sessions in / asked | login phase s | RSS KiB per session "
        "(total growth / marginal) | RSS after MiB | idle CPU | heartbeats/s | "
        "still open | ours vs it (RSS per session, total growth) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ours = results.get("ours-idle", {})
    for peer in peers:
        r = results.get(f"{peer}-idle")
        if r is None:
            continue
        lines.append(
            f"| {NAMES[peer]} | {fmt(r.get('logged_in'))} / {fmt(r.get('users'))} | "
            f"{fmt(r.get('login_s'), 1)} | {fmt(r.get('rss_per_session_kib'), 1)} / "
            f"{fmt(marginal(r), 1)} | "
            f"{fmt((r.get('rss_after_kib') or 0) / 1024, 1)} | "
            f"{fmt((r.get('idle_cpu_util') or 0) * 100, 2)}% | "
            f"{fmt(r.get('heartbeats_per_s'))} | {fmt(r.get('still_open'))} | "
            + (
                "-"
                if peer == "ours"
                else ratio(
                    ours.get("rss_per_session_kib"),
                    r.get("rss_per_session_kib"),
                    higherIsBetter=False,
                )
            )
            + " |"
        )
    return lines


def stormTable(results: dict[str, dict[str, Any]], peers: list[str]) -> list[str]:
    """
    Login storm: time until all are in, against the bare hashing time.
    """
    hashing = results.get("hashbench", {})
    lines = []
    if hashing:
        lines += [
            f"Bare Argon2id hashing: {hashing['hashes']:,} hashes on "
            f"{hashing['threads']} thread(s) pinned to CPU(s) {hashing['cpus']}: "
            f"**{hashing['hash_s']:.2f} s** ({hashing['ms_per_hash']:.1f} ms a hash).",
            "",
        ]
    lines += [
        "| server | users in | all in (s) | median user in (s) | server CPU s | "
        "vs bare hashing |",
        "|---|---|---|---|---|---|",
    ]
    for peer in peers:
        r = results.get(f"{peer}-storm")
        if r is None:
            continue
        vs = (
            f"{r['all_in_s'] / hashing['hash_s']:.2f}x"
            if peer == "ours" and hashing and r.get("all_in_s")
            else "(no hashing)"
            if peer != "ours"
            else "-"
        )
        lines.append(
            f"| {NAMES[peer]} | {fmt(r.get('logged_in'))} / {fmt(r.get('users'))} | "
            f"{fmt(r.get('all_in_s'), 2)} | {fmt(r.get('median_in_s'), 2)} | "
            f"{fmt(r.get('server_cpu_s'), 2)} | {vs} |"
        )
    return lines


def ceilingLines(results: dict[str, dict[str, Any]]) -> list[str]:
    """
    What the generator itself can count on one core.
    """
    lines = [
        "| source | counting | lines/s counted | lines per read | generator CPU | "
        "generator lines per CPU-s |",
        "|---|---|---|---|---|---|",
    ]
    for key in sorted(results):
        r = results[key]
        if not key.startswith("ceiling-"):
            continue
        polled = (r.get("read_interval_ms") or 0) > 0
        how = f"polled every {r['read_interval_ms']:g} ms" if polled else "event-driven"
        if r.get("workload") == "ceiling":
            source = f"flood blaster, {key.split('-')[2]} line(s) per write"
            rate = r.get("lines_per_s")
        else:
            source = "relay blaster (asyncio chat server), windowed fan-out"
            rate = r.get("delivered_per_s")
        lines.append(
            f"| {source} | {how} | {fmt(rate)} | {fmt(r.get('lines_per_chunk'), 1)} | "
            f"{fmt((r.get('gen_cpu_util') or 0) * 100)}% | "
            f"{fmt(r.get('gen_lines_per_cpu_s'))} |"
        )
    return lines


def plot(results: dict[str, dict[str, Any]], peers: list[str], path: Path) -> bool:
    """
    p99 latency against offered rate, one line per server (log scale); not
    drawn (False) without any fan-out figure.
    """
    fanout = fanoutResults(results)
    lines = {
        peer: [
            (rate, p99)
            for rate, rounds in sorted(fanout.get(peer, {}).items())
            if rate
            and (p99 := medianRound(rounds).get("latency", {}).get("p99_ms"))
            is not None
        ]
        for peer in [*peers, "ours-irc"]
    }
    if not any(lines.values()):
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for peer, points in lines.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=NAMES[peer])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered messages/s (100 users, 10 senders; x99 deliveries)")
    ax.set_ylabel("p99 latency (ms)")
    ax.axhline(5, color="grey", linestyle=":", linewidth=1)
    ax.set_title("Fan-out p99 latency, each server pinned to one core")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def ircSection(results: dict[str, dict[str, Any]], peers: list[str]) -> list[str]:
    """
    The fan-out with IRC clients only, if ours was measured with them.
    """
    tables = ircTables(results, peers)
    if not tables:
        return []
    return [
        "## Fan-out with IRC clients (the IRC servers' home ground)",
        "",
        "The same fan-out, ours measured through its IRC front-end "
        "(`--irc-listen` beside `--listen` in the same process; nick = account, "
        "`PASS` with its password; every user in `#general`, where our server "
        "puts it) beside the IRC servers in `#bench`.",
        "",
        *tables,
    ]


def peerSections(
    results: dict[str, dict[str, Any]], peers: list[str], plotted: bool
) -> list[str]:
    """
    The fan-out, login storm and idle scale sections, the peers side by
    side; a section whose workload did not run (C{PEER_WORKLOADS}) is left
    out.
    """
    ran = {k.split("-")[-1] for k in results if k.split("-")[0] in peers}
    out: list[str] = []
    if any("-fanout-" in k for k in results):
        out += [
            "## Fan-out",
            "",
            f"{'![p99 latency vs offered rate](p99_vs_rate.png)' if plotted else ''}",
            "",
            *fanoutTables(results, peers),
            *ircSection(results, peers),
        ]
    if "storm" in ran:
        out += ["## Login storm", "", *stormTable(results, peers), ""]
    if "idle" in ran:
        out += [
            "## Idle scale",
            "",
            "RSS per session: total growth over all sessions, and marginal "
            "(growth over the second half only, which leaves out fixed costs "
            "such as the hashing threads' buffers). Ours heartbeats over UDP at "
            "the default interval; the IRC servers' sessions are registered and "
            "idle (no channel).",
            "",
            *idleTable(results, peers),
            "",
        ]
    return out


def main(argv: list[str] | None = None) -> int:
    """
    Read a run directory; write RESULTS.md and the plot.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True)
    args = parser.parse_args(argv)
    results = load(args.run)
    skipped = [s for s in (args.run / "skipped.txt").read_text().split() if s in NAMES]
    peers = [
        p
        for p in ORDER
        if p not in skipped and any(k.startswith(f"{p}-") for k in results)
    ]
    read = lambda name: (args.run / name).read_text().strip()  # noqa: E731
    plotted = plot(results, peers, args.plot)
    out = [
        "# Benchmark results",
        "",
        f"Written by `bench/run.sh` from `{args.run.name}` (raw JSON per run kept "
        "in `bench/out/`, not committed). The fan-out, front-ends and hub sections "
        "run in rounds (every server or setup in turn, each round), their "
        "tables showing each round and the median round; the other figures "
        "are one run each. Each server is "
        "pinned to one core with `taskset`, the load generator on the other. "
        "Figures marked *generator-bound* were taken with the generator's own "
        "core at 90% or more and say nothing about the server.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Parameters",
        "",
        *(f"- {line}" for line in read("parameters.txt").splitlines()),
        "",
        "## Limits raised or turned off (beside every figure below)",
        "",
        *(f"- {line}" for line in dict.fromkeys(read("settings.txt").splitlines())),
        "",
    ]
    if skipped:
        out += [f"Skipped (not installed): {', '.join(skipped)}.", ""]
    out += [
        "## Generator ceiling",
        "",
        "Counting receivers poll their sockets every few ms and count `\\n` in "
        "bulk; observers (3) parse every line for the latency stamp as it arrives.",
        "",
        *ceilingLines(results),
        "",
    ]
    if peers:  # only the hub section ran otherwise
        out += peerSections(results, peers, plotted)
    if hubResults(results):
        out += [
            "## Scale-out (hub)",
            "",
            "The fan-out workload with the same users (and senders, and observers) "
            "spread round-robin over 1, 2 and 3 nodes of one chat sharing one "
            "redis-server, against one node without `--hub`, in the same run, "
            "in rounds (every setup in turn, each round). "
            "Every node and Redis are pinned to the same core: on this machine "
            "this measures the cost of a delivery through the hub, not scaling. "
            "Deliveries per CPU-second count the CPU of every node plus Redis; "
            "the last column divides each round's figure by the single node's "
            "in the same round, and the latencies by the single node's; the "
            "other columns are from each setup's median round, but for the "
            "lines lost, which count every round "
            "(deliveries per CPU-s: higher is better; latency: lower is better).",
            "",
            *hubTables(results),
        ]
    if frontendResults(results):
        out += [
            "## Front-ends",
            "",
            "One of our servers listening for line (`--listen`), IRC "
            "(`--irc-listen`) and web clients (`--web-listen`, the WebSocket at "
            "`/ws`), the fan-out run through each in turn on that one server "
            "and repeated in rounds, so that every workload stands beside "
            "all-line in the same run. With several front-ends user *i* speaks "
            "the (*i* mod *K*)th, senders and observers spread over them. A web "
            "user gets its own lines back (the page shows a line as relayed), "
            "so a web sender's line is one delivery more, counted in the "
            "expected figure. The last column divides each round's deliveries "
            "per server CPU-second by those of all-line (the rooms of other "
            "front-ends: of all-line in the same rooms) in the same round.",
            "",
            *frontendTables(results),
        ]
    out += [
        "## Exact commands",
        "",
        "```",
        read("commands.txt"),
        "```",
        "",
    ]
    args.results.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
