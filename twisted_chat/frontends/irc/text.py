"""
The text rules between IRC and the chat: what of an IRC user's text is
kept, how it is handed to the session core, and how a long line is split
into IRC messages.

The chat's text is IRC's own (L{twisted_chat.core.text}): IRC formatting
(bold, colour, reverse, italics, underline, reset) and the CTCP ACTION of
C{/me} travel through the core as they are, and every other control
character, escape sequence and bidirectional override goes, as on the line
protocol.  So the core's text reads on IRC as it is, and each other
front-end renders it for its own users.
"""

from ...core.text import action, actionOf, cleanFormatted

CTCP = "\x01"
ACTION = "ACTION"


def clientText(raw: str) -> tuple[str, bool] | None:
    """
    What an IRC user's message text says: the cleaned text (formatting
    kept) and whether it is an action (C{/me}); L{None} for any other CTCP,
    which no one here could answer.
    """
    if not raw.startswith(CTCP):
        return cleanFormatted(raw), False
    command, _, rest = raw[1:].rstrip(CTCP).partition(" ")
    if command.upper() != ACTION:
        return None
    return cleanFormatted(rest), True


def toCore(text: str, isAction: bool) -> str:
    """
    The chat's text for an IRC user's message C{text} (cleaned by
    L{clientText}), an action if C{isAction}.
    """
    return action(text) if isAction else text


def splitText(text: str, limit: int) -> list[str]:
    """
    C{text} in pieces of at most C{limit} bytes of UTF-8, cut at a space in
    the second half of a piece if there is one (the space is dropped), else
    at a character boundary.  An action is split into several actions.
    """
    data = text.encode("utf-8")
    if len(data) <= limit:
        return [text]
    done = actionOf(text)
    if done is not None:
        framing = len(action("").encode())
        return [action(piece) for piece in splitText(done, limit - framing)]
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
