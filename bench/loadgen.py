"""
Load generator for twisted-chat and the IRC servers it is compared with.

One asyncio process (on uvloop when it is importable) opens many client
connections and drives one workload against one server:

- ``fanout``: N users in one group (our chat) or channel (IRC), S of them
  sending at a total rate R msg/s, or as fast as the server takes them with a
  bounded number of messages in flight, for D seconds.  Every client counts
  delivered lines in bulk (``data.count(b"\\n")`` per chunk, no parsing; a
  WebSocket client counts ``"type":"line"``) so that the receivers are never
  the bottleneck; a few observer clients also parse every line (or frame)
  and take the latency from a timestamp in the payload.
  With several ports (``--port P1,P2,P3``: the nodes of one chat shared over
  a hub) the users, and so the senders and observers, go to the ports
  round-robin; with several pids (``--pid N1,N2,N3,REDIS``) the server CPU is
  their sum, and each process's share is reported too.  With several
  protocols (``--proto chat,irc --port P_LINE,P_IRC``: the front-ends of one
  server) user i speaks protocol i mod K to the matching port.
- ``idle``: N logged-in idle sessions (optionally heartbeating over UDP):
  server RSS per session and server CPU while idle.
- ``storm``: U new users registering at once: time until all are in.
- ``hashbench``: the time the Argon2 hashes of a storm take alone, with the
  same parallelism as the server, to compare the storm with.
- ``blaster``: a trivial asyncio server speaking our line protocol, which
  either floods every logged-in client with lines (to measure this
  generator's own ceiling) or relays group lines (a reference server, and
  what a smoke test can run against without the real server; a relay also
  speaks our WebSocket, to test the web dialect).
- ``ceiling``: count lines from a flooding blaster for D seconds: the rate
  this generator can count on one core.
- ``mkusers``: write a ``users.json`` holding N accounts that share one
  password hash, so that a workload that is not about registration does not
  pay for N hashes plus N file writes before it starts.
- ``waitport``: wait until a TCP port accepts connections.

Every workload prints one JSON object (and writes it with ``--json``); the
figures of the server come from ``/proc/<pid>`` when ``--pid`` is given.
The module is importable: ``main(argv)`` runs one command and returns the
exit status, so a test can drive it for a second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import heapq
import json
import os
import random
import re
import resource
import secrets
import socket
import struct
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

WELCOME = b"Welcome to twisted-chat. An unknown name creates an account.\r\n"
USERNAME_PROMPT = b"Username: "
PASSWORD_PROMPT = b"Password: "
LOGIN_SUCCESS = b"Login success!"
CHAT_FAILURES = (
    b"Wrong password.",
    b"Invalid username",
    b"Too many",
    b"Login timed out",
)
IRC_CHANNEL = b"#bench"
JOINED_ROOM = b"You are now in "
PASSWORD = "benchpw"
PROTOCOLS = ("chat", "irc", "web")
# Our server puts every user in #general at login, whatever its front-end:
# IRC users meet line and web users there.
GENERAL = b"#general"

# WebSocket (RFC 6455): the path of the chat's socket, the GUID of the
# handshake's accept key, and what a delivered room line starts with (the
# server writes compact JSON with "type" first).
WEB_PATH = "/ws"
WEB_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WEB_LINE = b'"type":"line"'
WEB_LINE_FRAME = b'{"type":"line"'
WEB_OVERLAP = len(WEB_LINE) - 1  # bytes kept between reads, to count across them
WEB_TEXT, WEB_CLOSE, WEB_PING, WEB_PONG = 0x1, 0x8, 0x9, 0xA

# The payload of a fan-out message: ~<monotonic ns>~<sender>~<seq>~ then padding.
STAMP = re.compile(rb"~(\d{6,})~(\d+)~(\d+)~")


# ---------------------------------------------------------------------------
# Reading the server's figures from /proc
# ---------------------------------------------------------------------------


def procCPUSeconds(pid: int | None) -> float | None:
    """
    User plus system CPU time of process C{pid} (all its threads), in
    seconds, from C{/proc/<pid>/stat}; L{None} without a pid or process.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its ")".
    fields = stat.rsplit(b")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def procRSSKiB(pid: int | None) -> int | None:
    """
    Resident set size of process C{pid} in KiB (C{VmRSS} of
    C{/proc/<pid>/status}); L{None} without a pid or process.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def procName(pid: int) -> str | None:
    """
    The command name of process C{pid} (C{/proc/<pid>/comm}).
    """
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def pinProcess(pid: int, cpus: set[int]) -> None:
    """
    Pin every thread of process C{pid} to C{cpus} (like C{taskset -a -p}).
    """
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cpus)


def raiseFileLimit() -> int:
    """
    Raise this process's open-files soft limit to the hard limit (idle scale
    needs one descriptor per session); return the new soft limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentiles(samples: list[int]) -> dict[str, float | int | None]:
    """
    p50, p99 and max of latency C{samples} (nanoseconds), in milliseconds.
    """
    if not samples:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6, 3)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] / 1e6, 3),
    }


# ---------------------------------------------------------------------------
# Dialects: our line protocol, IRC and our WebSocket
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """
    How to log in, what says a login worked or failed, and how to send a
    group message, in one protocol.

    @ivar channel: the IRC channel joined (without rooms), and the room a
        web user says its lines in (without rooms: C{#general}, where the
        server puts it).
    """

    name: str
    ircPass: bool = False
    join: bool = True
    heartbeat: bool = False
    channel: bytes = IRC_CHANNEL

    @property
    def isIRC(self) -> bool:
        return self.name == "irc"

    @property
    def isWeb(self) -> bool:
        return self.name == "web"

    @property
    def echoes(self) -> bool:
        """
        Whether the server sends a user its own room lines back (our web
        front-end does: the page shows a line as relayed, with its id).
        """
        return self.isWeb

    def loginBytes(self, user: str, password: str, room: bytes | None = None) -> bytes:
        """
        Everything a client sends to log in (and to join C{room}, in our
        chat and on the web), pipelined in one write; on the web, once the
        WebSocket is open.
        """
        if self.isWeb:
            login = {"type": "login", "name": user, "password": password}
            data = webFrame(json.dumps(login, separators=(",", ":")).encode())
            if room is not None:
                # Handled once the login is: the server takes a client's
                # messages strictly in turn.
                data += webFrame(b'{"type":"join","room":"' + room + b'"}')
            return data
        if not self.isIRC:
            data = f"{user}\n{password}\n".encode()
            if self.heartbeat:
                data += b"@HEARTBEAT\n"
            if room is not None:
                data += b"@JOIN " + room + b"\n"
            return data
        data = b""
        if self.ircPass:  # twisted.words and ours log in with PASS; ngircd refuses it
            data += f"PASS {password}\r\n".encode()
        # JOIN waits for RPL_WELCOME: InspIRCd finishes registration
        # asynchronously and refuses a pipelined JOIN (451).
        return data + f"NICK {user}\r\nUSER {user} 0 * :{user}\r\n".encode()

    def upgradeRequest(self, host: str, port: int, key: bytes) -> bytes:
        """
        The HTTP request that opens the WebSocket at C{/ws}, without an
        C{Origin} (a client that is not a page; the server admits it).
        """
        return (
            f"GET {WEB_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    def afterWelcome(self, room: bytes | None = None) -> bytes:
        """
        What an IRC client sends once registered (RPL_WELCOME, 001).  Our
        server has put it in C{#general} already, and ignores a JOIN of it.
        """
        return b"JOIN " + (room or self.channel) + b"\r\n" if self.join else b""

    def readyMarkers(self, room: bytes | None = None) -> tuple[bytes, ...]:
        """
        The texts that, all in one line (or WebSocket message), tell that
        the login (and join) is complete.
        """
        if self.isWeb:
            if room is None:
                return (b'"type":"logged_in"',)
            return (b'"type":"in_room","room":"' + room + b'"',)
        if not self.isIRC:
            return (LOGIN_SUCCESS,) if room is None else (JOINED_ROOM + room + b" (",)
        if not self.join:
            return (b" 001 ",)
        # The end of the NAMES of this channel: our server shows #general's
        # at registration, before the JOIN of another is answered.
        return (b" 366 ", b" " + (room or self.channel) + b" :")

    def failed(self, line: bytes) -> bool:
        """
        Whether C{line} (a WebSocket message), seen before the ready
        marker, means the login failed.
        """
        if self.isWeb:
            return b'"type":"login_refused"' in line or line.startswith(
                b'{"type":"error"'
            )
        if not self.isIRC:
            return line.startswith(CHAT_FAILURES)
        return line.startswith(b"ERROR") or b" 433 " in line or b" 432 " in line

    def message(self, text: bytes, room: bytes | None = None) -> bytes:
        """
        One message to the group (or C{room}) carrying C{text}: in our chat
        a plain line goes to the current room, the one joined at login; on
        the web a C{say} names its room.  C{text} is a payload, which needs
        no JSON escaping.
        """
        if self.isIRC:
            return b"PRIVMSG " + (room or self.channel) + b" :" + text + b"\r\n"
        if self.isWeb:
            return webFrame(
                b'{"type":"say","room":"'
                + (room or self.channel)
                + b'","text":"'
                + text
                + b'"}'
            )
        return text + b"\n"


def webFrame(payload: bytes, opcode: int = WEB_TEXT) -> bytes:
    """
    C{payload} as one whole WebSocket frame from a client: final, masked
    with a fresh key (RFC 6455 section 5.3; the XOR done on two big ints,
    not byte by byte).
    """
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    key = random.randbytes(4)
    return header + key + unmask(payload, key)


def unmask(payload: bytes, key: bytes) -> bytes:
    """
    C{payload} XOR the repeated 4-byte C{key} (masking and unmasking are
    the same operation).
    """
    size = len(payload)
    stream = (key * (size // 4 + 1))[:size]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(size, "big")


def parseFrames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """
    The complete WebSocket frames at the start of C{data}, as (opcode,
    payload), and the bytes after them (an incomplete frame).  The server
    sends each message as one unfragmented frame; a masked frame (a
    client's, as the blaster reads them) is unmasked.
    """
    frames: list[tuple[int, bytes]] = []
    pos, end = 0, len(data)
    while end - pos >= 2:
        first, second = data[pos], data[pos + 1]
        size, head = second & 0x7F, 2
        if size == 126:
            if end - pos < 4:
                break
            size, head = struct.unpack_from("!H", data, pos + 2)[0], 4
        elif size == 127:
            if end - pos < 10:
                break
            size, head = struct.unpack_from("!Q", data, pos + 2)[0], 10
        key = b""
        if second & 0x80:
            key = data[pos + head : pos + head + 4]
            head += 4
        if end - pos < head + size:
            break
        body = data[pos + head : pos + head + size]
        frames.append((first & 0x0F, unmask(body, key) if key else body))
        pos += head + size
    return frames, data[pos:]


def acceptKey(key: bytes) -> bytes:
    """
    The C{Sec-WebSocket-Accept} that answers C{Sec-WebSocket-Key: key}.
    """
    return base64.b64encode(hashlib.sha1(key + WEB_GUID).digest())


def countWebLines(tail: bytes, data: bytes | bytearray, n: int) -> tuple[int, bytes]:
    """
    The room lines (C{"type":"line"}) in the first C{n} bytes of C{data},
    counted in bulk without parsing, including one that straddles the
    previous read, whose last bytes are C{tail}; and the new tail.

    The tail is one byte shorter than the pattern, so a match in tail plus
    head must cross between them and is never counted twice.
    """
    head = bytes(data[: min(n, WEB_OVERLAP)])
    count = data.count(WEB_LINE, 0, n) + (tail + head).count(WEB_LINE)
    tail = (tail + bytes(data[max(0, n - WEB_OVERLAP) : n]))[-WEB_OVERLAP:]
    return count, tail


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------


@dataclass
class Totals:
    """
    Counters shared by every client of a run (one attribute update per chunk).
    """

    lines: int = 0
    chunks: int = 0
    lastReceive: float = 0.0
    closedAfterLogin: int = 0


@dataclass
class Heartbeat:
    """
    What the server's C{HEARTBEAT <udp-port> <token> <interval> <timeout>}
    line told one session.
    """

    port: int
    token: bytes
    interval: float
    timeout: float


class Client(asyncio.Protocol):
    """
    One simulated user.  Until it is in, it parses lines (or WebSocket
    frames) to find the login outcome (and the heartbeat answer); after that
    it only counts lines in bulk, and an observer also parses payload
    timestamps.
    """

    def __init__(
        self,
        dialect: Dialect,
        name: str,
        totals: Totals,
        observer: Observer | None = None,
        onHeartbeat: Callable[[Client], None] | None = None,
        room: bytes | None = None,
    ) -> None:
        self.dialect = dialect
        self.room = room
        self.onHeartbeat = onHeartbeat
        self.name = name
        self.totals = totals
        self.observer = observer
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.loggedIn = False
        self.closed = False
        self.startedAt = 0.0
        self.readyAt = 0.0
        self.heartbeat: Heartbeat | None = None
        self.heartbeatRefused = False
        self._buffer = b""
        self._irc = dialect.isIRC
        self._web = dialect.isWeb
        self._markers = dialect.readyMarkers(room)
        # WebSocket: the handshake's key, whether the server answered it,
        # the last bytes of the previous read (for the bulk count) and an
        # observer's incomplete frame.
        self._key = base64.b64encode(secrets.token_bytes(16))
        self._upgraded = False
        self.tail = b""
        self._frames = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.startedAt = time.monotonic()
        if self._web:
            host, port = self.transport.get_extra_info("peername")[:2]
            self.transport.write(self.dialect.upgradeRequest(host, port, self._key))
            return
        self.transport.write(self.dialect.loginBytes(self.name, PASSWORD, self.room))

    def data_received(self, data: bytes) -> None:
        if self.loggedIn:
            totals = self.totals
            if self._web:
                count, self.tail = countWebLines(self.tail, data, len(data))
                totals.lines += count
            else:
                totals.lines += data.count(b"\n")
            totals.chunks += 1
            totals.lastReceive = time.monotonic()
            if self._irc and b"PING " in data:
                self._pong(data)
            if self.observer is not None:
                if self._web:
                    self._observeFrames(data)
                else:
                    self.observer.feed(data)
            return
        self._buffer += data
        if self._web:
            self._scanWebLogin()
        else:
            self._scanLogin()

    def _observeFrames(self, data: bytes) -> None:
        """
        Give an observer the room lines of the whole frames received so far
        (one a line), answering pings on the way.
        """
        assert self.observer is not None
        frames, self._frames = parseFrames(self._frames + data)
        texts = []
        for opcode, body in frames:
            if body.startswith(WEB_LINE_FRAME):
                texts.append(body)
            elif opcode == WEB_PING:
                self.send(webFrame(body, WEB_PONG))
        if texts:
            self.observer.feed(b"\n".join(texts) + b"\n")

    def _scanWebLogin(self) -> None:
        """
        Find the server's answer to the WebSocket handshake, send the login,
        then look through the messages for its outcome.
        """
        assert self.transport is not None
        if not self._upgraded:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 16384:
                    self._fail("no end to the HTTP answer")
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            status = head.split(b"\r\n", 1)[0]
            if status.split(b" ")[1:2] != [b"101"]:
                self._fail(status.decode("utf-8", "replace"))
                return
            accept = b"sec-websocket-accept: " + acceptKey(self._key).lower()
            if accept not in head.lower():
                self._fail("wrong Sec-WebSocket-Accept")
                return
            self._upgraded = True
            login = self.dialect.loginBytes(self.name, PASSWORD, self.room)
            self.transport.write(login)
        frames, self._buffer = parseFrames(self._buffer)
        done = False
        for opcode, body in frames:
            if opcode == WEB_PING:
                self.send(webFrame(body, WEB_PONG))
            elif done:
                continue
            elif opcode == WEB_CLOSE:
                reason = body[2:].decode("utf-8", "replace")
                self._fail(f"closed by the server ({reason})")
                return
            elif all(marker in body for marker in self._markers):
                done = True
            elif self.dialect.failed(body):
                self._fail(body.decode("utf-8", "replace"))
                return
        if done:
            self.loggedIn = True
            # What follows the ready message is the start of the next frame.
            self._frames = self._buffer
            self.tail = self._buffer[-WEB_OVERLAP:]
            self._buffer = b""
            self.readyAt = time.monotonic()
            if not self.ready.done():
                self.ready.set_result(None)

    def _scanLogin(self) -> None:
        """
        Look through the complete lines received so far for the outcome of
        the login, the heartbeat answer, and IRC PINGs.
        """
        lines = self._buffer.split(b"\n")
        self._buffer = lines.pop()
        done = False
        markers = self._markers
        for raw in lines:
            line = raw.rstrip(b"\r")
            if self._irc and line.startswith(b"PING "):
                assert self.transport is not None
                self.transport.write(b"PONG " + line[5:] + b"\r\n")
            elif all(marker in line for marker in markers):
                done = True
            elif self._irc and b" 001 " in line:
                assert self.transport is not None
                self.transport.write(self.dialect.afterWelcome(self.room))
            elif line.startswith(b"HEARTBEAT "):
                self.heartbeat = parseHeartbeat(line)
                if self.heartbeat is not None and self.onHeartbeat is not None:
                    self.onHeartbeat(self)
            elif line.startswith(b"Unknown command @HEARTBEAT"):
                self.heartbeatRefused = True
            elif not done and self.dialect.failed(line):
                self._fail(line.decode("utf-8", "replace"))
                return
        waiting_for_heartbeat = (
            self.dialect.heartbeat
            and not self._irc
            and self.heartbeat is None
            and not self.heartbeatRefused
        )
        if (done or self.readyAt) and not waiting_for_heartbeat:
            self.loggedIn = True
            self._buffer = b""
            if not self.readyAt:
                self.readyAt = time.monotonic()
            if not self.ready.done():
                self.ready.set_result(None)
        elif done:
            self.readyAt = time.monotonic()

    def _pong(self, data: bytes) -> None:
        assert self.transport is not None
        for raw in data.split(b"\n"):
            if raw.startswith(b"PING "):
                self.transport.write(b"PONG " + raw[5:].rstrip(b"\r") + b"\r\n")

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(LoginError(f"{self.name}: {why}"))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.loggedIn:
            self.totals.closedAfterLogin += 1
        elif not self.ready.done():
            self.ready.set_exception(LoginError(f"{self.name}: connection closed"))

    def send(self, data: bytes) -> None:
        """
        Write C{data} to the server.
        """
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def backlog(self) -> int:
        """
        Bytes written but not yet taken by the kernel (the server is slow).
        """
        return 0 if self.transport is None else self.transport.get_write_buffer_size()

    def close(self) -> None:
        """
        Drop the connection.
        """
        if self.transport is not None and not self.closed:
            self.transport.close()


class LoginError(Exception):
    """
    The server refused a login or closed the connection before it completed.
    """


def parseHeartbeat(line: bytes) -> Heartbeat | None:
    """
    Parse C{HEARTBEAT <udp-port> <token> <interval> <timeout>}.
    """
    parts = line.split()
    if len(parts) != 5:
        return None
    try:
        return Heartbeat(int(parts[1]), parts[2], float(parts[3]), float(parts[4]))
    except ValueError:
        return None


@dataclass
class Observer:
    """
    Parses every delivered line of one client for the payload timestamp:
    latency samples and how many messages of each sender arrived.
    """

    samples: list[int] = field(default_factory=list)
    perSender: dict[int, int] = field(default_factory=dict)
    seen: int = 0
    maxSamples: int = 2_000_000
    onSeen: Callable[[], None] | None = None
    _tail: bytes = b""

    def feed(self, data: bytes) -> None:
        now = time.monotonic_ns()
        data = self._tail + data
        end = data.rfind(b"\n") + 1
        self._tail = data[end:]
        count = 0
        for match in STAMP.finditer(data, 0, end):
            sender = int(match.group(2))
            self.perSender[sender] = self.perSender.get(sender, 0) + 1
            if len(self.samples) < self.maxSamples:
                self.samples.append(now - int(match.group(1)))
            count += 1
        if count:
            self.seen += count
            if self.onSeen is not None:
                self.onSeen()

    def reset(self) -> None:
        """
        Forget what was seen before the measurement started.
        """
        self.samples.clear()
        self.perSender.clear()
        self.seen = 0


# ---------------------------------------------------------------------------
# Connecting and logging in many clients
# ---------------------------------------------------------------------------


@dataclass
class Target:
    """
    The server under test: where it listens and which processes it is made
    of (one, or the nodes of a chat shared over a hub and the hub itself).
    """

    host: str
    ports: tuple[int, ...]
    pids: tuple[int, ...] = ()
    # The MSS the clients announce (0: the kernel's; on loopback 65,483
    # bytes, where an Ethernet path gives 1,448).
    mss: int = 0

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def pid(self) -> int | None:
        return self.pids[0] if self.pids else None

    def portFor(self, index: int) -> int:
        """
        The port that the C{index}th client connects to (round-robin).
        """
        return self.ports[index % len(self.ports)]

    def cpuSeconds(self) -> dict[int, float | None]:
        """
        The CPU seconds of each process, by pid.
        """
        return {pid: procCPUSeconds(pid) for pid in self.pids}


async def connected(target: Target, port: int) -> socket.socket:
    """
    A TCP socket connected to C{target} on C{port}, announcing the target's
    MSS if it sets one.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if target.mss:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, target.mss)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (target.host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def connectAll(
    target: Target,
    clients: Sequence[Client],
    concurrency: int,
    timeout: float,
) -> tuple[list[Client], list[str]]:
    """
    Connect and log in every client, at most C{concurrency} logins at once,
    all within C{timeout} seconds; return those that got in and the errors.
    The clients go to the target's ports round-robin.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    semaphore = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(client: Client, port: int) -> bool:
        async with semaphore:
            remaining = deadline - loop.time()
            if remaining <= 0:
                errors.append(f"{client.name}: not started before the deadline")
                return False
            try:
                async with asyncio.timeout(remaining):
                    await loop.create_connection(
                        lambda: client, sock=await connected(target, port)
                    )
                    await client.ready
            except (OSError, LoginError, TimeoutError) as e:
                errors.append(f"{client.name}: {type(e).__name__}: {e}")
                client.close()
                return False
            return True

    results = await asyncio.gather(
        *(one(c, target.portFor(i)) for i, c in enumerate(clients))
    )
    return [c for c, ok in zip(clients, results, strict=True) if ok], errors


async def settle(totals: Totals, quiet: float, limit: float) -> float:
    """
    Wait until no line has arrived for C{quiet} seconds (join notices of the
    login phase have drained), at most C{limit} seconds; return the wait.
    """
    start = time.monotonic()
    while time.monotonic() - start < limit:
        await asyncio.sleep(min(0.1, quiet))
        if time.monotonic() - max(totals.lastReceive, start) >= quiet:
            break
    return time.monotonic() - start


class BulkReader:
    """
    Counts the lines of many clients by polling their sockets every few
    milliseconds instead of reacting to each arriving chunk.

    Event-driven, a receiver costs a wakeup, a read and a Python callback
    per chunk, and when the server writes one line per write the chunks are
    one or two lines: the generator then saturates its core near the rates
    we want to measure.  Polling reads whatever accumulated in the kernel
    buffer (a few KiB at most at these rates, far below the socket buffer, so
    the server's writes are unaffected) into one preallocated buffer and
    counts newlines there (on a WebSocket, C{"type":"line"}).  Observers
    stay event-driven: their latency must not include the polling interval.
    Each client's protocol decides how its bytes are counted, so that the
    users of several front-ends can share one reader.
    """

    def __init__(self, totals: Totals, interval: float) -> None:
        self.totals = totals
        self.interval = interval
        self.sockets: list[tuple[socket.socket, Client]] = []
        self.buffer = bytearray(1 << 18)
        self.reads = 0
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    def add(self, client: Client) -> None:
        """
        Take over the reading of C{client}: pause its transport and read a
        duplicate of its socket's descriptor.
        """
        assert client.transport is not None
        fd = client.transport.get_extra_info("socket").fileno()
        client.transport.pause_reading()
        sock = socket.socket(fileno=os.dup(fd))
        sock.setblocking(False)
        self.sockets.append((sock, client))

    def start(self) -> None:
        """
        Start polling.
        """
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """
        Stop polling and close the duplicated descriptors.
        """
        self._stopped = True
        if self._task is not None:
            await self._task
        for sock, _ in self.sockets:
            sock.close()

    def poll(self) -> None:
        """
        Read everything that is waiting on every socket; count its lines.
        """
        buffer, size = self.buffer, len(self.buffer)
        lines = reads = 0
        for sock, client in self.sockets:
            while not client.closed:
                try:
                    n = sock.recv_into(buffer)
                except BlockingIOError:
                    break
                except OSError:
                    client.closed = True
                    break
                if n == 0:
                    client.closed = True
                    self.totals.closedAfterLogin += 1
                    break
                reads += 1
                if client._web:
                    count, client.tail = countWebLines(client.tail, buffer, n)
                    lines += count
                else:
                    lines += buffer.count(b"\n", 0, n)
                    if client._irc and buffer.find(b"PING ", 0, n) != -1:
                        client._pong(bytes(buffer[:n]))
                if n < size:
                    break
        if lines:
            totals = self.totals
            totals.lines += lines
            totals.chunks += reads
            totals.lastReceive = time.monotonic()
        self.reads += reads

    async def _run(self) -> None:
        while not self._stopped:
            self.poll()
            await asyncio.sleep(self.interval)
        self.poll()


# Where Linux's struct tcp_info holds tcpi_data_segs_in (since 4.6).
TCP_INFO_DATA_SEGS_IN = 152


def dataSegmentsIn(clients: Sequence[Client]) -> dict[int, int]:
    """
    How many data segments each open client's socket has received so far
    (Linux C{TCP_INFO}), by client index; empty where it cannot be read.
    On loopback a segment is one write of the server's that the kernel sent
    on its own (writes that Nagle's algorithm held back go in one), so this
    says how many rounds of writes it took to deliver the lines.
    """
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return {}
    counts: dict[int, int] = {}
    for index, client in enumerate(clients):
        if client.transport is None or client.closed:
            continue
        sock = client.transport.get_extra_info("socket")
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, option, 256)
        except (OSError, AttributeError):
            return {}
        if len(info) < TCP_INFO_DATA_SEGS_IN + 4:
            return {}
        counts[index] = struct.unpack_from("I", info, TCP_INFO_DATA_SEGS_IN)[0]
    return counts


def closeAll(clients: Sequence[Client]) -> None:
    """
    Drop every connection.
    """
    for client in clients:
        client.close()


def protocols(text: str) -> tuple[str, ...]:
    """
    The protocols C{--proto} names (C{chat}, C{irc}, C{web}, or several
    separated by commas), for argparse.
    """
    names = tuple(text.split(","))
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"not a list of {', '.join(PROTOCOLS)}: {text!r}"
        )
    return names


def protocolText(text: str) -> str:
    """
    C{text} once checked by L{protocols} (the results keep C{--proto} as
    given).
    """
    protocols(text)
    return text


def ircChannel(args: argparse.Namespace, names: Sequence[str]) -> bytes:
    """
    The IRC channel of a run: C{--irc-channel}, else C{#general} when IRC
    users share the server with line or web users (they meet there), else
    C{#bench}.
    """
    chosen: str | None = getattr(args, "irc_channel", None)
    if chosen:
        return chosen.encode()
    return GENERAL if set(names) - {"irc"} else IRC_CHANNEL


def makeDialect(args: argparse.Namespace, **overrides: Any) -> Dialect:
    """
    The dialect that the command-line options ask for (the first protocol
    of C{--proto}, unless C{name} is given).
    """
    names = protocols(args.proto)
    name = overrides.pop("name", names[0])
    values: dict[str, Any] = {
        "name": name,
        "ircPass": getattr(args, "irc_pass", False),
        "channel": GENERAL if name == "web" else ircChannel(args, names),
    }
    values.update(overrides)
    return Dialect(**values)


def makeDialects(args: argparse.Namespace) -> list[Dialect]:
    """
    One dialect per protocol of C{--proto}, in its order.
    """
    return [makeDialect(args, name=name) for name in protocols(args.proto)]


# ---------------------------------------------------------------------------
# Workload: fan-out
# ---------------------------------------------------------------------------


def payload(sender: int, seq: int, size: int) -> bytes:
    """
    A message text carrying its send time, sender and sequence number,
    padded to C{size} bytes.
    """
    stamp = b"~%d~%d~%d~" % (time.monotonic_ns(), sender, seq)
    return stamp + b"x" * max(0, size - len(stamp))


async def fanout(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """
    N users, S senders at a total rate R (or window-bound as fast as
    possible) for D seconds; delivered lines, CPU, latency and losses.
    """
    if args.senders + args.observers > args.users:
        raise SystemExit("--senders plus --observers must not exceed --users")
    if args.rate <= 0 and args.observers < 1:
        raise SystemExit("as-fast-as-possible mode needs at least one observer")
    if args.rate <= 0 and args.rooms:
        raise SystemExit("rooms need a fixed --rate (the window follows one room)")
    dialects = makeDialects(args)
    if len(dialects) > 1 and len(target.ports) != len(dialects):
        raise SystemExit("several protocols need as many ports, one each")
    totals = Totals()
    observers = [Observer() for _ in range(args.observers)]
    clients: list[Client] = []
    for i in range(args.users):
        # Senders first, then observers, then plain counting receivers;
        # with rooms, user i is in room i mod R; with several protocols,
        # user i speaks protocol i mod K (to port i mod K).
        j = i - args.senders
        observer = observers[j] if 0 <= j < args.observers else None
        room = b"#r%d" % (i % args.rooms) if args.rooms else None
        dialect = dialects[i % len(dialects)]
        clients.append(
            Client(dialect, f"{args.prefix}{i}", totals, observer, room=room)
        )
    byProtocol: dict[str, int] = {}
    for client in clients:
        byProtocol[client.dialect.name] = byProtocol.get(client.dialect.name, 0) + 1
    t0 = time.monotonic()
    inside, errors = await connectAll(
        target, clients, args.connect_concurrency, args.login_timeout
    )
    login_seconds = time.monotonic() - t0
    result: dict[str, Any] = {
        "workload": "fanout",
        "label": args.label,
        "proto": args.proto,
        "users": args.users,
        "users_by_proto": byProtocol,
        "senders": args.senders,
        "observers": args.observers,
        "rooms": args.rooms or None,
        "offered_rate": args.rate if args.rate > 0 else None,
        "window": args.window if args.rate <= 0 else None,
        "duration_s": args.duration,
        "size": args.size,
        "logged_in": len(inside),
        "login_s": round(login_seconds, 3),
        "login_errors": errors[:5],
    }
    if len(inside) < args.users:
        closeAll(clients)
        result["error"] = f"only {len(inside)} of {args.users} users got in"
        return result
    # Our server writes join and leave notices at most once a second
    # (NOTICE_INTERVAL): a shorter quiet spell may end before the last
    # logins' notices are out, and they would be counted as deliveries.
    result["settle_s"] = round(await settle(totals, args.settle_quiet, 15.0), 3)

    senders = clients[: args.senders]
    reader: BulkReader | None = None
    if args.read_interval > 0:
        reader = BulkReader(totals, args.read_interval / 1000)
        for client in clients:
            if client.observer is None:
                reader.add(client)
        reader.start()
    for observer in observers:
        observer.reset()
    totals.lines = totals.chunks = 0
    state = _SendState()
    primary = observers[0] if observers else None
    if primary is not None and args.rate <= 0:

        def seen() -> None:
            if state.waiting and state.sent - primary.seen < args.window:
                state.wake.set()

        primary.onSeen = seen

    segments0 = dataSegmentsIn(clients)
    cpu0 = target.cpuSeconds()
    gen0 = time.process_time()
    start = time.monotonic()
    if args.rate > 0:
        await _sendAtRate(senders, args, state)
    else:
        assert primary is not None
        await _sendWindowed(senders, args, state, primary)
    send_end = time.monotonic()
    # Each line reaches the other members of its sender's room, and a web
    # sender too (the server echoes a web user's own lines).
    members: dict[bytes | None, int] = {}
    for client in clients:
        members[client.room] = members.get(client.room, 0) + 1
    roomOf = [client.room for client in senders]
    echoes = sum(
        count
        for index, count in state.perSender.items()
        if senders[index].dialect.echoes
    )
    expected = echoes + sum(
        count * (members[roomOf[index]] - 1) for index, count in state.perSender.items()
    )
    drain_start = time.monotonic()
    while time.monotonic() - drain_start < args.drain_timeout:
        if totals.lines >= expected:
            break
        if time.monotonic() - max(totals.lastReceive, send_end) > 1.0:
            break  # nothing for a second: what is missing is lost
        await asyncio.sleep(0.02)
    end = max(send_end, min(totals.lastReceive, time.monotonic()))
    cpu1 = target.cpuSeconds()
    gen1 = time.process_time()
    segments1 = dataSegmentsIn(clients)
    # The clients open at both ends of the window (all of them, but those
    # that the server dropped).
    segments = (
        sum(segments1[i] - segments0[i] for i in segments1 if i in segments0)
        if segments0 and segments1
        else None
    )
    if reader is not None:
        await reader.stop()
    closeAll(clients)

    elapsed = end - start
    delivered = totals.lines
    processes = cpuShares(cpu0, cpu1, elapsed)
    server_cpu = (
        sum(p["cpu_s"] for p in processes)
        if processes and all(p["cpu_s"] is not None for p in processes)
        else None
    )
    gen_cpu = gen1 - gen0
    samples = [s for o in observers for s in o.samples]
    observer_lost = sum(
        sum(c for i, c in state.perSender.items() if roomOf[i] == client.room)
        - sum(client.observer.perSender.values())
        for client in clients
        if client.observer is not None
    )
    result.update(
        {
            "sent": state.sent,
            "skipped_backlog": state.skipped,
            "window_stalls": state.stalls,
            "send_s": round(send_end - start, 3),
            "elapsed_s": round(elapsed, 3),
            "expected": expected,
            "expected_echoes": echoes,
            "delivered": delivered,
            "lost": max(0, expected - delivered),
            # More than expected: lines that are not the run's (notices),
            # which would hide as many lost ones.
            "surplus": max(0, delivered - expected),
            "observer_lost": observer_lost,
            "delivered_per_s": round(delivered / elapsed) if elapsed > 0 else None,
            "sent_per_s": round(state.sent / (send_end - start)),
            "ports": list(target.ports),
            "server_processes": processes,
            "server_cpu_s": None if server_cpu is None else round(server_cpu, 3),
            "server_cpu_util": (
                None if server_cpu is None else round(server_cpu / elapsed, 3)
            ),
            "lines_per_server_cpu_s": (
                round(delivered / server_cpu) if server_cpu else None
            ),
            "gen_cpu_util": round(gen_cpu / elapsed, 3),
            "gen_lines_per_cpu_s": round(delivered / gen_cpu) if gen_cpu else None,
            "lines_per_chunk": (
                round(delivered / totals.chunks, 2) if totals.chunks else None
            ),
            # Data segments the users received in the window, and what they
            # carried and cost: the same lines in fewer segments cost the
            # server fewer sends and the users fewer wake-ups.
            "data_segments": segments,
            "lines_per_segment": round(delivered / segments, 2) if segments else None,
            "server_cpu_us_per_segment": (
                round(server_cpu / segments * 1e6, 2)
                if segments and server_cpu
                else None
            ),
            "read_interval_ms": args.read_interval,
            "client_mss": target.mss or None,
            "closed_during_run": totals.closedAfterLogin,
            "latency": percentiles(samples),
        }
    )
    # A figure taken while the generator used (nearly) all of its core says
    # more about the generator than about the server.
    result["generator_bound"] = result["gen_cpu_util"] >= 0.9
    return result


def cpuShares(
    before: dict[int, float | None], after: dict[int, float | None], elapsed: float
) -> list[dict[str, Any]]:
    """
    Each process's CPU seconds between two readings, and its share of
    C{elapsed} (L{None} for a process that was gone at either reading).
    """
    shares = []
    for pid, start in before.items():
        end = after.get(pid)
        used = None if start is None or end is None else end - start
        shares.append(
            {
                "pid": pid,
                "name": procName(pid),
                "cpu_s": None if used is None else round(used, 3),
                "cpu_util": (
                    None if used is None or elapsed <= 0 else round(used / elapsed, 3)
                ),
            }
        )
    return shares


@dataclass
class _SendState:
    """
    What the send loop has done, shared with the first observer's callback.
    """

    attempts: int = 0
    sent: int = 0
    perSender: dict[int, int] = field(default_factory=dict)
    skipped: int = 0
    stalls: int = 0
    waiting: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def _sendOne(
    senders: Sequence[Client],
    args: argparse.Namespace,
    state: _SendState,
) -> None:
    index = state.attempts % len(senders)
    state.attempts += 1
    sender = senders[index]
    if sender.backlog() > args.max_backlog:
        # The server does not read this sender: do not queue without bound.
        state.skipped += 1
        return
    text = payload(index, state.sent, args.size)
    sender.send(sender.dialect.message(text, sender.room))
    state.sent += 1
    state.perSender[index] = state.perSender.get(index, 0) + 1


async def _sendAtRate(
    senders: Sequence[Client],
    args: argparse.Namespace,
    state: _SendState,
) -> None:
    """
    Open loop: keep the total sent on the line R*t, ticking every ms.
    """
    start = time.monotonic()
    attempts = 0
    while (now := time.monotonic()) - start < args.duration:
        due = int((now - start) * args.rate)
        while attempts < due:
            attempts += 1
            _sendOne(senders, args, state)
        await asyncio.sleep(0.001)


async def _sendWindowed(
    senders: Sequence[Client],
    args: argparse.Namespace,
    state: _SendState,
    primary: Observer,
) -> None:
    """
    Closed loop: at most C{--window} messages sent and not yet seen by the
    first observer; a window stuck for a second is counted and reopened.
    """
    start = time.monotonic()
    base = 0  # messages given up on after a stall
    while time.monotonic() - start < args.duration:
        room = args.window - (state.sent - base - primary.seen)
        if room > 0:
            for _ in range(min(room, 64)):
                _sendOne(senders, args, state)
            await asyncio.sleep(0)
            continue
        state.wake.clear()
        state.waiting = True
        try:
            await asyncio.wait_for(state.wake.wait(), 1.0)
        except TimeoutError:
            state.stalls += 1
            base = state.sent - primary.seen
        finally:
            state.waiting = False


# ---------------------------------------------------------------------------
# Workload: idle scale
# ---------------------------------------------------------------------------


class _HeartbeatSender(asyncio.DatagramProtocol):
    """
    Sends each session's token by UDP once per interval from the moment the
    session got it (a login phase may last minutes, longer than the server's
    heartbeat timeout), the sessions' phases spread at random.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = 0
        self._queue: list[tuple[float, int, Client]] = []
        self._count = 0
        self._stopped = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def add(self, client: Client) -> None:
        """
        Start heartbeating C{client}, whose C{heartbeat} is known.
        """
        assert client.heartbeat is not None
        due = time.monotonic() + random.random() * client.heartbeat.interval
        self._count += 1
        heapq.heappush(self._queue, (due, self._count, client))

    def stop(self) -> None:
        """
        Stop at the next tick.
        """
        self._stopped = True

    async def run(self, limit: float) -> None:
        """
        Heartbeat every session added, until stopped or C{limit} seconds.
        """
        queue = self._queue
        deadline = time.monotonic() + limit
        while not self._stopped and (now := time.monotonic()) < deadline:
            while queue and queue[0][0] <= now:
                due, count, client = heapq.heappop(queue)
                beat = client.heartbeat
                if client.closed or beat is None:
                    continue
                assert self.transport is not None
                self.transport.sendto(beat.token, (self.host, beat.port))
                self.sent += 1
                heapq.heappush(queue, (due + beat.interval, count, client))
            await asyncio.sleep(0.02)


async def idle(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """
    N logged-in idle sessions: server RSS per session, CPU while idle.
    """
    limit = raiseFileLimit()
    dialect = makeDialect(args, join=args.irc_join, heartbeat=args.heartbeat)
    totals = Totals()
    rss0 = procRSSKiB(target.pid)
    loop = asyncio.get_running_loop()
    sender = _HeartbeatSender(target.host)
    udp, _ = await loop.create_datagram_endpoint(
        lambda: sender, local_addr=("127.0.0.1", 0)
    )
    heartbeating = loop.create_task(
        sender.run(args.login_timeout + args.settle_timeout + args.duration + 60)
    )
    clients = [
        Client(dialect, f"{args.prefix}{i}", totals, onHeartbeat=sender.add)
        for i in range(args.users)
    ]
    t0 = time.monotonic()
    try:
        # Two halves: the RSS growth over the second half, per session, leaves
        # out fixed costs (hashing buffers, thread arenas, imports).
        half = len(clients) // 2
        inside, errors = await connectAll(
            target, clients[:half], args.connect_concurrency, args.login_timeout
        )
        await settle(totals, 1.0, args.settle_timeout)
        rss_half = procRSSKiB(target.pid)
        more, errors2 = await connectAll(
            target,
            clients[half:],
            args.connect_concurrency,
            max(1.0, args.login_timeout - (time.monotonic() - t0)),
        )
        inside += more
        errors += errors2
        login_seconds = time.monotonic() - t0
        result: dict[str, Any] = {
            "workload": "idle",
            "label": args.label,
            "proto": args.proto,
            "users": args.users,
            "nofile_limit": limit,
            "logged_in": len(inside),
            "login_s": round(login_seconds, 3),
            "login_errors": errors[:5],
            "login_error_count": len(errors),
            "rss_before_kib": rss0,
        }
        if args.pin_after_login is not None and target.pid is not None:
            pinProcess(target.pid, {args.pin_after_login})
            result["pinned_after_login_to_cpu"] = args.pin_after_login
        result["settle_s"] = round(await settle(totals, 1.0, args.settle_timeout), 3)
        result["heartbeating"] = sum(c.heartbeat is not None for c in inside)
        result["heartbeat_refused"] = sum(c.heartbeatRefused for c in inside)
        cpu0 = procCPUSeconds(target.pid)
        sent0 = sender.sent
        start = time.monotonic()
        await asyncio.sleep(args.duration)
        elapsed = time.monotonic() - start
        cpu1 = procCPUSeconds(target.pid)
        rss1 = procRSSKiB(target.pid)
    finally:
        sender.stop()
        await heartbeating
        udp.close()
    still_open = sum(not c.closed for c in inside)
    closeAll(clients)
    server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    result.update(
        {
            "idle_s": round(elapsed, 3),
            "heartbeats_per_s": round((sender.sent - sent0) / elapsed, 1),
            "still_open": still_open,
            "rss_after_kib": rss1,
            "rss_half_kib": rss_half,
            "rss_per_session_kib": (
                round((rss1 - rss0) / len(inside), 2)
                if rss0 is not None and rss1 is not None and inside
                else None
            ),
            "rss_per_session_marginal_kib": (
                round((rss1 - rss_half) / len(more), 2)
                # Only meaningful when both halves (mostly) got in.
                if rss_half is not None
                and rss1 is not None
                and len(inside) - len(more) == half
                and len(more) >= max(1, half // 2)
                else None
            ),
            "idle_cpu_util": (
                None if server_cpu is None else round(server_cpu / elapsed, 4)
            ),
        }
    )
    return result


# ---------------------------------------------------------------------------
# Workload: login storm
# ---------------------------------------------------------------------------


async def storm(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """
    U new users registering at once: time until the last one is in.
    """
    raiseFileLimit()
    dialect = makeDialect(args, join=False)
    totals = Totals()
    tag = secrets.token_hex(2)
    clients = [
        Client(dialect, f"{args.prefix}{tag}{i}", totals) for i in range(args.users)
    ]
    cpu0 = procCPUSeconds(target.pid)
    t0 = time.monotonic()
    inside, errors = await connectAll(target, clients, args.users, args.login_timeout)
    elapsed = time.monotonic() - t0
    cpu1 = procCPUSeconds(target.pid)
    closeAll(clients)
    waits = sorted(c.readyAt - t0 for c in inside)
    return {
        "workload": "storm",
        "label": args.label,
        "proto": args.proto,
        "users": args.users,
        "logged_in": len(inside),
        "errors": errors[:5],
        "error_count": len(errors),
        "storm_s": round(elapsed, 3),
        "all_in_s": round(waits[-1], 3) if waits else None,
        "first_in_s": round(waits[0], 3) if waits else None,
        "median_in_s": round(waits[len(waits) // 2], 3) if waits else None,
        "server_cpu_s": (
            None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3)
        ),
    }


def hashbench(args: argparse.Namespace) -> dict[str, Any]:
    """
    Time C{--users} Argon2id hashes with the server's parameters on
    C{--threads} threads (default: the CPUs this process may use, as the
    server does).
    """
    import argon2  # only this command needs it

    hasher = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    threads = args.threads or len(os.sched_getaffinity(0))
    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(hasher.hash, (f"pw{i}" for i in range(args.users))))
    elapsed = time.monotonic() - t0
    return {
        "workload": "hashbench",
        "label": args.label,
        "hashes": args.users,
        "threads": threads,
        "cpus": sorted(os.sched_getaffinity(0)),
        "hash_s": round(elapsed, 3),
        "ms_per_hash": round(elapsed / args.users * 1000 * threads, 3),
    }


def mkusers(args: argparse.Namespace) -> dict[str, Any]:
    """
    Write an account file (format version 1) with C{--users} accounts named
    C{<prefix><i>} that all share one Argon2id hash of the bench password:
    one hash to make, and logins still verify with the server's cost.
    """
    import argon2

    hasher = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    stored = hasher.hash(PASSWORD)
    users = [{"name": f"{args.prefix}{i}", "hash": stored} for i in range(args.users)]
    document = {"version": 1, "users": users}
    with open(args.out, "w") as f:
        json.dump(document, f, indent=1)
    return {"workload": "mkusers", "users": args.users, "out": args.out}


# ---------------------------------------------------------------------------
# The blaster: a trivial asyncio server for the ceiling and smoke tests
# ---------------------------------------------------------------------------


class _BlasterRoom:
    """
    The blaster's logged-in connections.
    """

    def __init__(self, mode: str, chunkLines: int, size: int) -> None:
        self.mode = mode
        self.members: set[_BlasterConnection] = set()
        line = b"blaster > " + payload(0, 0, size) + b"\r\n"
        self.chunk = line * chunkLines
        self.stopped = False

    def relay(self, sender: _BlasterConnection, text: bytes) -> None:
        """
        Give C{text} from C{sender} to the others as a line (C{name >
        text}), and to every WebSocket member as a C{line} message, its
        sender included (as our server echoes a web user's lines).
        """
        assert sender.name is not None
        line = sender.name + b" > " + text + b"\r\n"
        frame = b""
        for member in self.members:
            if member.web:
                if not frame:
                    frame = serverFrame(
                        b'{"type":"line","room":"#general","from":"'
                        + sender.name
                        + b'","text":"'
                        + text
                        + b'","origin":"'
                        + (b"web" if sender.web else b"line")
                        + b'"}'
                    )
                member.write(frame)
            elif member is not sender:
                member.write(line)


def serverFrame(payload: bytes) -> bytes:
    """
    C{payload} as one unmasked WebSocket text frame, as a server sends it.
    """
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x80 | WEB_TEXT, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x80 | WEB_TEXT, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | WEB_TEXT, 127, size) + payload


class _BlasterConnection(asyncio.Protocol):
    """
    Our line protocol's login, then either a flood of lines or a relay of
    each line to the others as C{name > text}.  In relay mode a connection
    that starts with C{GET} speaks our WebSocket instead (the handshake,
    C{login} and C{say}, and C{line} messages echoed to their sender), so
    that the self-test covers the web dialect without our server.
    """

    def __init__(self, room: _BlasterRoom) -> None:
        self.room = room
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.name: bytes | None = None
        self.loggedIn = False
        self.paused = False
        self.web = False
        self.upgraded = False
        self.greeted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.room.mode != "relay":
            self.transport.write(WELCOME + USERNAME_PROMPT)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.web and not self.greeted and self.room.mode == "relay":
            # A relay waits for the first bytes to tell a WebSocket client
            # (which expects an HTTP answer first) from a line client.
            self.greeted = True
            if data.startswith(b"GET "):
                self.web = True
            else:
                self.transport.write(WELCOME + USERNAME_PROMPT)
        if self.web:
            self._webReceived(data)
            return
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        for raw in lines:
            line = raw.rstrip(b"\r")
            if not line:
                continue
            if self.name is None:
                self.name = line
                self.transport.write(PASSWORD_PROMPT)
            elif not self.loggedIn:
                self._logIn()
            elif line.upper() == b"LOGOUT":
                self.transport.close()
                return
            elif self.room.mode == "relay":
                self.room.relay(self, line)

    def _webReceived(self, data: bytes) -> None:
        """
        The WebSocket handshake, then the client's masked frames.
        """
        assert self.transport is not None
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            key = b""
            for header in head.split(b"\r\n")[1:]:
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + acceptKey(key)
                + b"\r\n\r\n"
            )
            self.upgraded = True
        frames, self.buffer = parseFrames(self.buffer)
        for opcode, body in frames:
            if opcode != WEB_TEXT:
                continue
            message = json.loads(body)
            if message.get("type") == "login" and not self.loggedIn:
                self.name = str(message["name"]).encode()
                self.write(
                    serverFrame(b'{"type":"logged_in","name":"' + self.name + b'"}')
                )
                self.loggedIn = True
                self.room.members.add(self)
            elif message.get("type") == "say" and self.loggedIn:
                self.room.relay(self, str(message["text"]).encode())

    def _logIn(self) -> None:
        assert self.transport is not None and self.name is not None
        self.loggedIn = True
        self.transport.write(LOGIN_SUCCESS + b"\r\n")
        joined = b"* " + self.name + b" joined the chat.\r\n"
        for member in self.room.members:
            if not member.web:
                member.write(joined)
        self.room.members.add(self)
        if self.room.mode == "flood":
            self._flood()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flood(self) -> None:
        """
        Write a few chunks, then yield to the loop (a fast reader may keep
        the buffer from ever filling, and the other clients must get in).
        """
        transport = self.transport
        if transport is None or self.room.stopped:
            return
        for _ in range(16):
            if self.paused or transport.is_closing():
                return
            transport.write(self.room.chunk)  # pause_writing when it is full
        asyncio.get_running_loop().call_soon(self._flood)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.room.mode == "flood":
            asyncio.get_running_loop().call_soon(self._flood)

    def connection_lost(self, exc: Exception | None) -> None:
        self.room.members.discard(self)


async def startBlaster(
    host: str, port: int, mode: str, chunkLines: int, size: int
) -> tuple[asyncio.Server, _BlasterRoom]:
    """
    Start a blaster server; return it and its room.
    """
    room = _BlasterRoom(mode, chunkLines, size)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _BlasterConnection(room), host, port, backlog=4096
    )
    return server, room


async def blaster(args: argparse.Namespace) -> dict[str, Any]:
    """
    Run a blaster server for at most C{--max-seconds}.
    """
    server, room = await startBlaster(
        args.host, args.port, args.mode, args.chunk_lines, args.size
    )
    print(f"blaster listening on {args.host}:{args.port} ({args.mode})", flush=True)
    try:
        await asyncio.sleep(args.max_seconds)
    finally:
        room.stopped = True
        server.close()
    return {"workload": "blaster", "served_s": args.max_seconds}


async def ceiling(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """
    Count the lines of a flooding blaster for D seconds: the most lines per
    second this generator can count (while its CPU use is near 100%).
    """
    dialect = Dialect("chat")
    totals = Totals()
    clients = [Client(dialect, f"c{i}", totals) for i in range(args.users)]
    inside, errors = await connectAll(target, clients, 256, args.login_timeout)
    reader: BulkReader | None = None
    if args.read_interval > 0:
        reader = BulkReader(totals, args.read_interval / 1000)
        for client in inside:
            reader.add(client)
        reader.start()
    await asyncio.sleep(0.5)
    totals.lines = totals.chunks = 0
    gen0 = time.process_time()
    cpu0 = procCPUSeconds(target.pid)
    start = time.monotonic()
    await asyncio.sleep(args.duration)
    elapsed = time.monotonic() - start
    lines, chunks = totals.lines, totals.chunks
    gen_cpu = time.process_time() - gen0
    cpu1 = procCPUSeconds(target.pid)
    if reader is not None:
        await reader.stop()
    closeAll(clients)
    return {
        "workload": "ceiling",
        "label": args.label,
        "users": args.users,
        "read_interval_ms": args.read_interval,
        "logged_in": len(inside),
        "errors": errors[:5],
        "lines_per_s": round(lines / elapsed),
        "lines_per_chunk": round(lines / chunks, 2) if chunks else None,
        "gen_cpu_util": round(gen_cpu / elapsed, 3),
        "gen_lines_per_cpu_s": round(lines / gen_cpu) if gen_cpu else None,
        "blaster_cpu_util": (
            None if cpu0 is None or cpu1 is None else round((cpu1 - cpu0) / elapsed, 3)
        ),
    }


async def waitport(args: argparse.Namespace) -> dict[str, Any]:
    """
    Wait until C{host:port} accepts a TCP connection, at most C{--timeout}.
    """
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(args.host, args.port)
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{args.host}:{args.port} not listening") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return {"workload": "waitport", "port": args.port}


async def selftest(args: argparse.Namespace) -> dict[str, Any]:
    """
    A fan-out against an in-process relay blaster: proves the generator
    works end to end without any external server (C{--proto chat}, C{web}
    or C{chat,web}: the blaster speaks no IRC).
    """
    server, room = await startBlaster("127.0.0.1", 0, "relay", 1, args.size)
    port = server.sockets[0].getsockname()[1]
    # One port speaks both of the blaster's protocols (chat and web).
    ports = (port,) * len(protocols(args.proto))
    try:
        result = await fanout(args, Target("127.0.0.1", ports, mss=args.mss))
    finally:
        room.stopped = True
        server.close()
    result["workload"] = "selftest"
    return result


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def intList(text: str) -> tuple[int, ...]:
    """
    Parse C{"1,2,3"} (or one number) for argparse.
    """
    try:
        values = tuple(int(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError(f"not all positive: {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadgen", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use the plain asyncio loop"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the result here")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, users: int, several: bool = False) -> None:
        p.add_argument("--host", default="127.0.0.1")
        if several:
            p.add_argument(
                "--port",
                type=intList,
                default=(1234,),
                help="port, or P1,P2,... (users go to them round-robin)",
            )
            p.add_argument(
                "--pid",
                type=intList,
                default=(),
                help="server pid, or PID1,PID2,... (CPU summed over them)",
            )
        else:
            p.add_argument("--port", type=int, default=1234)
            p.add_argument("--pid", type=int, help="server pid, for CPU and RSS")
        p.add_argument("--label", default="server", help="name in the results")
        p.add_argument(
            "--proto",
            type=protocolText,
            default="chat",
            help="chat, irc or web; fanout: several, as chat,irc (user i speaks "
            "the (i mod K)th, to the (i mod K)th port)",
        )
        p.add_argument(
            "--irc-pass",
            action="store_true",
            help="send PASS (twisted.words; ours: the account's password)",
        )
        p.add_argument(
            "--irc-channel",
            help="IRC channel (default: #general beside chat or web users, "
            "else #bench; ours puts every user in #general)",
        )
        p.add_argument("--users", type=int, default=users)
        p.add_argument("--prefix", default="u", help="user names are PREFIX<i>")
        p.add_argument("--login-timeout", type=float, default=120.0)
        p.add_argument("--connect-concurrency", type=int, default=256)

    def fanoutOptions(p: argparse.ArgumentParser) -> None:
        common(p, 100, several=True)
        p.add_argument(
            "--mss",
            type=int,
            default=0,
            help="the MSS the clients announce (TCP_MAXSEG), as 1448 over "
            "Ethernet (default: the kernel's; 65483 on loopback)",
        )
        p.add_argument("--senders", type=int, default=10)
        p.add_argument("--observers", type=int, default=3)
        p.add_argument(
            "--rate", type=float, default=2000.0, help="msg/s in total; 0: windowed"
        )
        p.add_argument("--window", type=int, default=200, help="in flight, rate 0")
        p.add_argument(
            "--rooms",
            type=int,
            default=0,
            help="users in this many rooms (#r0 ...), user i in room i mod R; "
            "0: all in the group (or #bench)",
        )
        p.add_argument("--duration", type=float, default=5.0)
        p.add_argument("--size", type=int, default=48, help="payload bytes")
        p.add_argument("--drain-timeout", type=float, default=10.0)
        p.add_argument(
            "--settle-quiet",
            type=float,
            default=1.5,
            help="seconds without a line before the run starts (longer than "
            "the server's 1 s batching of join notices)",
        )
        p.add_argument("--max-backlog", type=int, default=1 << 20)
        p.add_argument(
            "--read-interval",
            type=float,
            default=0.0,
            help="ms between polls of the counting receivers; 0: event-driven",
        )

    fanoutOptions(commands.add_parser("fanout", help=fanout.__doc__))
    fanoutOptions(commands.add_parser("selftest", help=selftest.__doc__))

    p = commands.add_parser("idle", help=idle.__doc__)
    common(p, 10000)
    p.add_argument("--duration", type=float, default=20.0, help="idle seconds")
    p.add_argument("--heartbeat", action="store_true", help="ask for @HEARTBEAT")
    p.add_argument("--irc-join", action="store_true", help="IRC: JOIN the channel")
    p.add_argument("--settle-timeout", type=float, default=120.0)
    p.add_argument(
        "--pin-after-login",
        type=int,
        metavar="CPU",
        help="pin the server to CPU once all are in (login may use all CPUs)",
    )

    p = commands.add_parser("storm", help=storm.__doc__)
    common(p, 1000)

    p = commands.add_parser("hashbench", help=hashbench.__doc__)
    p.add_argument("--users", type=int, default=1000, help="hashes")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--label", default="argon2")

    p = commands.add_parser("mkusers", help=mkusers.__doc__)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--prefix", default="u")
    p.add_argument("--out", required=True)

    p = commands.add_parser("blaster", help=blaster.__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=("flood", "relay"), default="flood")
    p.add_argument("--chunk-lines", type=int, default=16, help="lines per write")
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--max-seconds", type=float, default=600.0)

    p = commands.add_parser("ceiling", help=ceiling.__doc__)
    common(p, 100)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--read-interval", type=float, default=0.0)

    p = commands.add_parser("waitport", help=waitport.__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    return parser


def _run(coroutine: Coroutine[Any, Any, dict[str, Any]], uvloop: bool) -> Any:
    """
    Run C{coroutine} on a fresh loop (uvloop's when wanted and importable),
    leaving the global event loop policy alone.
    """
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if uvloop:
        try:
            import uvloop as _uvloop
        except ImportError:
            pass
        else:
            factory = _uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        loop_name = type(runner.get_loop()).__module__.split(".")[0]
        result = runner.run(coroutine)
    if isinstance(result, dict):
        result.setdefault("loop", loop_name)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run one command; print its result as one JSON line; return 0, or 1 if
    the workload reported an error.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    command = args.command
    if command not in ("fanout", "selftest") and "," in getattr(args, "proto", ""):
        parser.error(f"{command} speaks one protocol: --proto {args.proto}")
    uvloop = not args.no_uvloop
    if command == "hashbench":
        result = hashbench(args)
    elif command == "mkusers":
        result = mkusers(args)
    elif command in ("blaster", "waitport", "selftest"):
        handler = {"blaster": blaster, "waitport": waitport, "selftest": selftest}
        result = _run(handler[command](args), uvloop)
    else:
        if command == "fanout":
            target = Target(args.host, args.port, args.pid, args.mss)
        else:
            pids = () if args.pid is None else (args.pid,)
            target = Target(args.host, (args.port,), pids)
        workloads = {"fanout": fanout, "idle": idle, "storm": storm, "ceiling": ceiling}
        result = _run(workloads[command](args, target), uvloop)
    text = json.dumps(result, sort_keys=True)
    print(text, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
