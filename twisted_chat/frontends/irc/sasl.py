"""
SASL PLAIN over C{AUTHENTICATE} (IRCv3 sasl-3.1/3.2): reassembling the
client's 400-byte chunks and reading the credentials.

Pure: the protocol feeds it the chunks and acts on what it answers.
"""

import binascii
from dataclasses import dataclass
from enum import Enum, auto

MECHANISM = "PLAIN"
CHUNK = 400
# The most base64 a client may send for one authentication: room for a
# long name and a password of well over 592 characters.
MAX_PAYLOAD = 4096


class Step(Enum):
    """
    What a chunk came to.
    """

    MORE = auto()
    DONE = auto()
    FAILED = auto()
    TOO_LONG = auto()
    ABORTED = auto()


@dataclass(frozen=True)
class Credentials:
    """
    The account and password a SASL PLAIN message names.
    """

    account: str
    password: str


class PlainExchange:
    """
    One SASL PLAIN exchange, after C{AUTHENTICATE PLAIN}: the chunks so far.
    """

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._size = 0
        self.credentials: Credentials | None = None

    def receive(self, chunk: str) -> Step:
        """
        Take one C{AUTHENTICATE} parameter: C{*} aborts, a chunk of exactly
        400 bytes asks for more, C{+} or a shorter chunk ends the message
        (then L{credentials} holds what it says, if it is valid).
        """
        if chunk == "*":
            return Step.ABORTED
        if len(chunk) > CHUNK:
            return Step.TOO_LONG
        if chunk != "+":
            self._chunks.append(chunk)
            self._size += len(chunk)
            if self._size > MAX_PAYLOAD:
                return Step.FAILED
            if len(chunk) == CHUNK:
                return Step.MORE
        self.credentials = readPlain("".join(self._chunks))
        return Step.FAILED if self.credentials is None else Step.DONE


def readPlain(payload: str) -> Credentials | None:
    """
    The credentials of a base64 PLAIN message (C{authzid NUL authcid NUL
    password}), or L{None} if it is not one, names two different accounts,
    or has an empty name or password.
    """
    try:
        decoded = binascii.a2b_base64(payload.encode("ascii"), strict_mode=True)
        text = decoded.decode("utf-8")
    except (ValueError, UnicodeError):
        return None
    parts = text.split("\0")
    if len(parts) != 3:
        return None
    authzid, authcid, password = parts
    if not authcid or not password or authzid not in ("", authcid):
        return None
    return Credentials(authcid, password)
