"""
IRC messages on the wire: parsing a client's line (RFC 1459/2812 framing,
IRCv3 message tags) and formatting the server's.

Pure functions and data: no network, no state.
"""

from dataclasses import dataclass, field

# The longest message without its tags, CRLF included (RFC 1459 2.3), and
# the most tag data a client may send (IRCv3 message-tags), without the @
# and the space after it.
MAX_MESSAGE = 512
MAX_CLIENT_TAGS = 4094
# The longest line a client may send: its tags (8191 bytes with the @ and
# the space, RFC-wise for client and server tags together) and a message.
MAX_LINE = 8191 + MAX_MESSAGE

_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE = str.maketrans(
    {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}
)


@dataclass(frozen=True)
class Message:
    """
    One IRC message: its tags, the prefix it came with (clients' prefixes
    are ignored), the command in upper case and its parameters.
    """

    command: str
    params: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    prefix: str | None = None


class LineTooLongError(ValueError):
    """
    The line's tags or its message part is longer than IRC allows.
    """


def unescapeTag(value: str) -> str:
    """
    The value of a tag as sent escaped (IRCv3 message-tags): C{\\:} is
    C{;}, C{\\s} a space, an unknown escape the character itself, and a
    lone backslash at the end is dropped.
    """
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_UNESCAPE.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def escapeTag(value: str) -> str:
    """
    C{value} escaped for a tag.
    """
    return value.translate(_ESCAPE)


def parseTags(text: str) -> dict[str, str]:
    """
    The tags of C{text} (the part after C{@}, before the first space); a
    tag without a value has the empty string, and the last of a repeated
    key wins.
    """
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if item:
            key, _, value = item.partition("=")
            tags[key] = unescapeTag(value)
    return tags


def parseMessage(line: str) -> Message | None:
    """
    Parse one line (without its line end); L{None} if it holds no command.

    @raise LineTooLongError: if its tags are over L{MAX_CLIENT_TAGS} bytes or
        the rest is over L{MAX_MESSAGE} bytes with its CRLF.
    """
    tags: dict[str, str] = {}
    rest = line
    if rest.startswith("@"):
        raw, _, rest = rest[1:].partition(" ")
        if len(raw.encode("utf-8")) > MAX_CLIENT_TAGS:
            raise LineTooLongError("tags")
        tags = parseTags(raw)
    rest = rest.lstrip(" ")
    if len(rest.encode("utf-8")) + 2 > MAX_MESSAGE:
        raise LineTooLongError("message")
    prefix = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
    head, colon, trailing = rest.partition(" :")
    words = head.split()
    if not words:
        return None
    params = words[1:]
    if colon:
        params.append(trailing)
    return Message(words[0].upper(), tuple(params), tags, prefix)


def formatMessage(
    command: str,
    *params: str,
    prefix: str | None = None,
    tags: dict[str, str] | None = None,
    trailing: bool = False,
) -> str:
    """
    One server message as a line without its CRLF: the last parameter
    takes a C{:} when it must (empty, with a space, or starting with C{:})
    or when it is C{trailing} text.
    """
    parts: list[str] = []
    if tags:
        parts.append(
            "@"
            + ";".join(
                f"{key}={escapeTag(value)}" if value else key
                for key, value in tags.items()
            )
        )
    if prefix is not None:
        parts.append(":" + prefix)
    parts.append(command)
    if params:
        *middle, last = params
        parts.extend(middle)
        if trailing or not last or " " in last or last.startswith(":"):
            last = ":" + last
        parts.append(last)
    return " ".join(parts)
