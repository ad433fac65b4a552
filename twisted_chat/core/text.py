"""
Rules for the text users send: names and the lines that are relayed or logged.
"""

import re
import unicodedata
from functools import lru_cache

MAX_NAME_LENGTH = 32

# Escape sequences (CSI, OSC, and two-character ESC forms, in 7-bit and
# 8-bit spellings) are removed whole, so that no visible residue such as
# "[2J" is left behind when the ESC itself goes.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# C0 controls except tab, DEL, C1 controls, and the bidirectional marks,
# embeddings, overrides and isolates that can reorder or hide text.
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def clean(text: str) -> str:
    """
    Remove what could move another user's cursor, retitle their terminal,
    reorder text or forge a log line: control characters other than tab,
    escape sequences and bidirectional overrides.
    """
    if text.isascii() and text.isprintable():
        return text
    return _UNSAFE.sub("", _ESCAPE_SEQUENCE.sub("", text))


# The chat's text is IRC's: plain text, but for IRC users' formatting codes
# (bold, colour, reset, reverse, italics, underline) and their actions
# (C{/me}, a CTCP ACTION).  Each front-end renders it for its own wire: the
# line protocol as plain text and C{* alice waves}.
FORMATTING = "\x02\x03\x0f\x16\x1d\x1f"
ACTION_START = "\x01ACTION "
ACTION_END = "\x01"
_FORMATTING_SPLIT = re.compile(f"([{FORMATTING}])")
# A formatting code, with a colour code's digits.
_FORMATTING_CODE = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|[\x02\x0f\x16\x1d\x1f]")


def cleanFormatted(text: str) -> str:
    """
    L{clean} C{text}, keeping IRC's formatting codes.
    """
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        piece if piece and piece in FORMATTING else clean(piece)
        for piece in _FORMATTING_SPLIT.split(text)
    )


def action(text: str) -> str:
    """
    The chat's text for the action (C{/me}) C{text}.
    """
    return ACTION_START + text + ACTION_END


def actionOf(text: str) -> str | None:
    """
    The action's own text if C{text} is an action, else L{None}.
    """
    if text.startswith(ACTION_START):
        return text[len(ACTION_START) :].removesuffix(ACTION_END)
    return None


def plain(text: str) -> str:
    """
    C{text} without IRC's formatting codes.
    """
    if text.isprintable():
        return text
    return _FORMATTING_CODE.sub("", text)


def described(text: str) -> str:
    """
    The chat's text as plain text, an action as C{/me waves}: for the audit
    log and other places that show no formatting.
    """
    done = actionOf(text)
    return plain(text) if done is None else "/me " + plain(done)


def normalizeName(raw: str) -> str | None:
    """
    Return the NFKC form of C{raw} if it is a valid user name (1 to 32
    letters, digits, C{_} or C{-}), else L{None}.
    """
    name = unicodedata.normalize("NFKC", raw.strip())
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        return None
    for char in name:
        if char in "_-":
            continue
        category = unicodedata.category(char)
        if category[0] != "L" and category != "Nd":
            return None
    return name


GENERAL = "#general"
# Names no user may take: the IRC front-end's service.
RESERVED = frozenset({"chatserv"})


# Web and IRC clients name the room of every line they send: the few names
# in use are checked once each, not once a line.
@lru_cache(maxsize=1024)
def normalizeRoom(raw: str) -> str | None:
    """
    Return the NFKC form of C{raw} if it is a valid room name (C{#} and a
    name under the user-name rules), else L{None}.
    """
    text = raw.strip()
    if not text.startswith("#") or text[1:2].isspace():
        return None
    name = normalizeName(text[1:])
    return None if name is None else "#" + name


def foldName(name: str) -> str:
    """
    Return the key under which C{name} is unique: NFKC, then case folding,
    so that C{Hakan} and C{hakan} are one user.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
