"""
The text rules between IRC and the chat: what of an IRC user's text is
kept, how it is handed to the session core, how the core's text reads on
IRC, and how a long line is split into IRC messages.

IRC formatting (bold, colour, reverse, italics, underline, reset) and the
CTCP ACTION of C{/me} are IRC's own; every other control character,
escape sequence and bidirectional override goes, as on the line protocol
(L{twisted_chat.core.text.clean}).

The core carries one text per line, and the line renderer writes it as it
is; so, until the line renderer learns IRC's rich text (see
C{irc-core-requests.md}, item 1), the core gets line-safe text
(L{toCore}): no formatting, and an action as C{* waves}, which L{fromCore}
turns back into an action for IRC recipients when the sender came over IRC.
"""

import re

from ...core.text import clean

# IRC's formatting codes: bold, colour, reset, reverse, italics, underline.
FORMATTING = "\x02\x03\x0f\x16\x1d\x1f"
_FORMATTING_SPLIT = re.compile(f"([{FORMATTING}])")
# A formatting code, with a colour code's digits.
_FORMATTING_CODE = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|[\x02\x0f\x16\x1d\x1f]")
CTCP = "\x01"
ACTION = "ACTION"
# How an action reads in the core's text (until it carries IRC's own).
ACTION_PREFIX = "* "


def keepFormatting(raw: str) -> str:
    """
    C{raw} without anything unsafe, IRC formatting codes kept.
    """
    if raw.isascii() and raw.isprintable():
        return raw
    return "".join(
        piece if piece and piece in FORMATTING else clean(piece)
        for piece in _FORMATTING_SPLIT.split(raw)
    )


def clientText(raw: str) -> tuple[str, bool] | None:
    """
    What an IRC user's message text says: the cleaned text and whether it
    is an action (C{/me}); L{None} for any other CTCP, which no one here
    could answer.
    """
    if not raw.startswith(CTCP):
        return keepFormatting(raw), False
    command, _, rest = raw[1:].rstrip(CTCP).partition(" ")
    if command.upper() != ACTION:
        return None
    return keepFormatting(rest), True


def toCore(text: str, action: bool) -> str:
    """
    The text the core carries for an IRC user's message (line-safe).
    """
    plain = _FORMATTING_CODE.sub("", text)
    return ACTION_PREFIX + plain if action and plain else plain


def fromCore(text: str, origin: str) -> str:
    """
    The core's text as an IRC message's: an IRC user's action is an action
    again.
    """
    if origin == "irc" and text.startswith(ACTION_PREFIX):
        return f"{CTCP}{ACTION} {text[len(ACTION_PREFIX) :]}{CTCP}"
    return text


def splitText(text: str, limit: int) -> list[str]:
    """
    C{text} in pieces of at most C{limit} bytes of UTF-8, cut at a space in
    the second half of a piece if there is one (the space is dropped), else
    at a character boundary.  An action is split into several actions.
    """
    data = text.encode("utf-8")
    if len(data) <= limit:
        return [text]
    action = text.startswith(CTCP + ACTION + " ")
    if action:
        head = f"{CTCP}{ACTION} ".encode()
        inner = data[len(head) :].rstrip(CTCP.encode())
        return [
            f"{CTCP}{ACTION} {piece}{CTCP}"
            for piece in splitText(inner.decode("utf-8"), limit - len(head) - 1)
        ]
    limit = max(limit, 4)
    pieces: list[str] = []
    while len(data) > limit:
        cut = limit
        while data[cut] & 0xC0 == 0x80:
            cut -= 1
        space = data.rfind(b" ", limit // 2, cut + 1)
        if space > 0:
            pieces.append(data[:space].decode("utf-8"))
            data = data[space + 1 :]
        else:
            pieces.append(data[:cut].decode("utf-8"))
            data = data[cut:]
    if data:
        pieces.append(data.decode("utf-8"))
    return pieces
