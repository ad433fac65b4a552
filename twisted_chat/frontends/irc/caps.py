"""
IRCv3 capability negotiation (C{CAP}): the capabilities this server
offers, how C{CAP LS} lists them, and how a C{CAP REQ} is judged.

Pure functions and data: no network, no state.
"""

from dataclasses import dataclass

CAP_NOTIFY = "cap-notify"
SASL = "sasl"
SERVER_TIME = "server-time"
ECHO_MESSAGE = "echo-message"
MESSAGE_TAGS = "message-tags"
MULTI_PREFIX = "multi-prefix"
USERHOST_IN_NAMES = "userhost-in-names"
BATCH = "batch"
CHATHISTORY = "draft/chathistory"

# Every capability offered, with its CAP LS 302 value.
CAPABILITIES: dict[str, str] = {
    CAP_NOTIFY: "",
    SASL: "PLAIN",
    SERVER_TIME: "",
    ECHO_MESSAGE: "",
    MESSAGE_TAGS: "",
    MULTI_PREFIX: "",
    USERHOST_IN_NAMES: "",
    BATCH: "",
    CHATHISTORY: "",
}

# The capabilities that choose a client's renderer: once the client's
# session is attached to the hub, its renderer may not change (the rooms
# group their clients by renderer), so these are refused after login.
RENDERING = frozenset({SERVER_TIME, MESSAGE_TAGS})

# The CAP LS reply is cut into lines of at most this many bytes of
# capabilities (the rest of a 512-byte line is the prefix and the command).
LS_LINE_BYTES = 400

# The version of CAP LS from which values are sent and cap-notify is on.
VALUES_VERSION = 302


def listing(version: int) -> list[str]:
    """
    The C{CAP LS} reply's capability lists, one per line: with values and
    as many lines as needed from version 302, on one line without values
    before it.
    """
    if version < VALUES_VERSION:
        return [" ".join(CAPABILITIES)]
    lines: list[str] = []
    current = ""
    for name, value in CAPABILITIES.items():
        item = f"{name}={value}" if value else name
        if current and len(current) + 1 + len(item) > LS_LINE_BYTES:
            lines.append(current)
            current = item
        else:
            current = f"{current} {item}" if current else item
    lines.append(current)
    return lines


@dataclass(frozen=True)
class Request:
    """
    A C{CAP REQ}: the capabilities to enable and those to disable.
    """

    enable: frozenset[str]
    disable: frozenset[str]


def parseRequest(text: str) -> Request | None:
    """
    The change a C{CAP REQ} asks for, or L{None} if any capability in it
    is unknown (the request is then refused whole).
    """
    enable: set[str] = set()
    disable: set[str] = set()
    for word in text.split():
        name = word[1:] if word.startswith("-") else word
        if name not in CAPABILITIES:
            return None
        (disable if word.startswith("-") else enable).add(name)
    if not enable and not disable:
        return None
    return Request(frozenset(enable), frozenset(disable))
