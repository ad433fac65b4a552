"""
Rules for the text users send: names and the lines that are relayed or logged.
"""

import re
import unicodedata

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
