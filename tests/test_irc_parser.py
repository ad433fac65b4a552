"""
Unit tests of the IRC front-end's pure parts: message framing and tags
(L{twisted_chat.frontends.irc.parser}), the text rules (C{text}), CAP
negotiation (C{caps}) and SASL PLAIN (C{sasl}).
"""

import base64

import pytest
from twisted.internet.task import Clock

from twisted_chat.frontends.irc import caps, sasl
from twisted_chat.frontends.irc.parser import (
    MAX_CLIENT_TAGS,
    MAX_MESSAGE,
    LineTooLongError,
    Message,
    escapeTag,
    formatMessage,
    parseMessage,
    unescapeTag,
)
from twisted_chat.frontends.irc.protocol import parseReference
from twisted_chat.frontends.irc.render import IRCRenderer
from twisted_chat.frontends.irc.text import clientText, splitText, toCore


class TestParse:
    def test_command_and_params(self) -> None:
        """
        When a line has middle parameters and a trailing one, the server
        reads each, upper-cases the command and keeps the trailing spaces.
        """
        assert parseMessage("privmsg #a :hello  world ") == Message(
            "PRIVMSG", ("#a", "hello  world ")
        )

    def test_prefix_ignored_and_spaces(self) -> None:
        """
        When a client sends a prefix and runs of spaces, the server keeps the
        prefix apart and the parameters without empty ones.
        """
        message = parseMessage(":me!x@y  JOIN   #a,#b   key")
        assert message == Message("JOIN", ("#a,#b", "key"), {}, "me!x@y")

    def test_empty_trailing(self) -> None:
        """
        When the trailing parameter is empty, the server still counts it.
        """
        assert parseMessage("JOIN :") == Message("JOIN", ("",))

    def test_nothing(self) -> None:
        """
        When a line holds no command (empty, spaces, only tags), the server
        reads nothing.
        """
        for line in ("", "   ", "@a=b", "@a=b  "):
            assert parseMessage(line) is None

    def test_tags(self) -> None:
        """
        When a line has tags, the server unescapes their values, gives a
        tag without a value the empty string, and lets the last repeat win.
        """
        message = parseMessage(
            r"@+typing=active;a=x\:y\sz\\\r\n;flag;a=2;b=c\ :n PING t"
        )
        assert message is not None
        assert message.tags == {"+typing": "active", "a": "2", "flag": "", "b": "c"}
        assert parseMessage(r"@a=x\:y\sz\\ PING t").tags == {"a": "x;y z\\"}  # type: ignore[union-attr]

    def test_unescape_unknown(self) -> None:
        """
        When a tag value has an unknown escape or a lone trailing backslash,
        the server keeps the character and drops the backslash.
        """
        assert unescapeTag(r"a\bc\\") == "abc\\"
        assert unescapeTag("end\\") == "end"

    def test_escape_roundtrip(self) -> None:
        """
        When the server escapes a tag value, unescaping it gives it back.
        """
        value = "a; b\\c\r\nd"
        assert unescapeTag(escapeTag(value)) == value

    def test_long_tags(self) -> None:
        """
        When a client's tags are over 4094 bytes, the server refuses the line.
        """
        parseMessage("@a=" + "x" * (MAX_CLIENT_TAGS - 2) + " PING t")
        with pytest.raises(LineTooLongError):
            parseMessage("@a=" + "x" * (MAX_CLIENT_TAGS - 1) + " PING t")

    def test_long_message(self) -> None:
        """
        When the message after the tags is over 510 bytes (512 with CRLF),
        the server refuses the line; tags do not count against it.
        """
        base = "PRIVMSG #a :"
        parseMessage("@a=b " + base + "x" * (510 - len(base)))
        with pytest.raises(LineTooLongError):
            parseMessage(base + "x" * (511 - len(base)))

    def test_format(self) -> None:
        """
        When the server formats a message, the last parameter gets a colon
        only if it is empty, has a space or starts with a colon, and tags
        are escaped.
        """
        assert formatMessage("PONG", "s", "t", prefix="s") == ":s PONG s t"
        assert formatMessage("PRIVMSG", "#a", "hi there") == "PRIVMSG #a :hi there"
        assert formatMessage("CAP", "*", "LIST", "") == "CAP * LIST :"
        assert formatMessage("X", ":)") == "X ::)"
        assert formatMessage("X", tags={"a": "b c", "d": ""}) == r"@a=b\sc;d X"


class TestText:
    def test_formatting_kept(self) -> None:
        """
        When an IRC user's text has IRC formatting, escape sequences, other
        controls and bidi overrides, the server keeps only the formatting.
        """
        raw = "\x02bold\x02 \x0304red\x03 \x1b[2Jx\x07y\u202ez\x1d\x1f\x16\x0f"
        assert clientText(raw) == (
            "\x02bold\x02 \x0304red\x03 xyz\x1d\x1f\x16\x0f",
            False,
        )

    def test_action(self) -> None:
        """
        When an IRC user sends a CTCP ACTION, the server reads it as an
        action; any other CTCP is refused.
        """
        assert clientText("\x01ACTION waves \x02hi\x02\x01") == (
            "waves \x02hi\x02",
            True,
        )
        assert clientText("\x01action waves") == ("waves", True)
        assert clientText("\x01VERSION\x01") is None
        assert clientText("plain") == ("plain", False)

    def test_core_text(self) -> None:
        """
        When an IRC user's text goes to the core, it stays IRC's: formatting
        (colour digits included) is kept and an action is a CTCP ACTION.
        """
        assert toCore("\x02b\x02 \x0312,04c\x03", False) == "\x02b\x02 \x0312,04c\x03"
        assert toCore("waves \x02hi\x02", True) == "\x01ACTION waves \x02hi\x02\x01"

    def test_split_spaces(self) -> None:
        """
        When a text is longer than an IRC message allows, the server cuts it
        at a space in the second half of each piece.
        """
        text = " ".join(["word"] * 30)
        pieces = splitText(text, 50)
        assert all(len(piece.encode()) <= 50 for piece in pieces)
        assert " ".join(pieces) == text
        assert splitText("short", 50) == ["short"]

    def test_split_utf8(self) -> None:
        """
        When a long text has no spaces and multibyte characters, the server
        cuts it at character boundaries and loses nothing.
        """
        text = "ğ😀" * 300
        pieces = splitText(text, 100)
        assert all(len(piece.encode()) <= 100 for piece in pieces)
        assert "".join(pieces) == text

    def test_split_action(self) -> None:
        """
        When a long action is split, every piece is an action.
        """
        pieces = splitText("\x01ACTION " + "a " * 100 + "\x01", 60)
        assert len(pieces) > 1
        for piece in pieces:
            assert piece.startswith("\x01ACTION ") and piece.endswith("\x01")
            assert len(piece.encode()) <= 60

    # Bytes of text: this prefix and target leave 472 for it.
    @pytest.mark.parametrize("size", [0, 1, 471, 472, 473, 1200])
    @pytest.mark.parametrize("variant", [(False, False), (True, False), (True, True)])
    def test_rendered_text(self, size: int, variant: tuple[bool, bool]) -> None:
        """
        When a room's line is rendered for IRC clients, with or without tags,
        it is each piece of its text as formatMessage writes it, at every
        length around the limit (a piece fills the line but its CRLF), in
        multi-byte characters too.
        """
        renderer = IRCRenderer("srv", Clock(), *variant)
        prefix, target = "bob!~bob@irc.srv", "#général"
        text = "é" * (size // 4) + "a" * (size - 2 * (size // 4))
        room = MAX_MESSAGE - len(f":{prefix} PRIVMSG {target} :\r\n".encode())
        tags = {"time": "1970-01-01T00:00:01.000Z"} if variant[0] else {}
        expected = [
            formatMessage(
                "PRIVMSG",
                target,
                piece,
                prefix=prefix,
                tags=tags | ({"msgid": "1-0"} if variant[1] and index == 0 else {}),
                trailing=True,
            ).encode()
            + b"\r\n"
            for index, piece in enumerate(splitText(text, room))
        ]
        assert len(text.encode()) == size
        assert len(expected) == (1 if size <= room else 3 if size > 2 * room else 2)
        rendered = renderer.text("PRIVMSG", prefix, target, text, 1.0, "1-0")
        assert rendered == b"".join(expected)
        # The tags have a budget of their own.
        bodies = [line.split(b" ", 1)[1] if tags else line for line in expected]
        assert all(len(body) <= MAX_MESSAGE for body in bodies)


class TestCaps:
    def test_ls_versions(self) -> None:
        """
        When a client asks CAP LS without 302, the server lists names only
        on one line; with 302 it adds values (sasl=PLAIN).
        """
        (old,) = caps.listing(0)
        assert "=" not in old and "sasl" in old.split()
        assert "sasl=PLAIN" in " ".join(caps.listing(302)).split()

    def test_ls_continuation(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """
        When the 302 listing is longer than a line, the server splits it
        between capabilities.
        """
        monkeypatch.setattr(caps, "LS_LINE_BYTES", 30)
        lines = caps.listing(302)
        assert len(lines) > 1 and all(len(line) <= 30 for line in lines)
        assert " ".join(lines).split() == [
            f"{name}={value}" if value else name
            for name, value in caps.CAPABILITIES.items()
        ]

    def test_request(self) -> None:
        """
        When a client requests capabilities, the server takes additions and
        removals, and refuses the whole request if any is unknown or if it
        is empty.
        """
        request = caps.parseRequest("server-time -echo-message")
        assert request == caps.Request(
            frozenset({"server-time"}), frozenset({"echo-message"})
        )
        assert caps.parseRequest("server-time bogus") is None
        assert caps.parseRequest("") is None


def plain(authzid: str, authcid: str, password: str) -> str:
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


class TestSasl:
    def test_single(self) -> None:
        """
        When a PLAIN message fits one chunk, the exchange ends with its
        credentials.
        """
        exchange = sasl.PlainExchange()
        assert exchange.receive(plain("", "jilles", "sesame")) is sasl.Step.DONE
        assert exchange.credentials == sasl.Credentials("jilles", "sesame")

    def test_chunks(self) -> None:
        """
        When a message is sent in 400-byte chunks, a chunk of exactly 400
        asks for more and a final C{+} ends it (a 592-character password).
        """
        payload = plain("foo", "foo", "b" * 592)
        assert len(payload) == 800
        exchange = sasl.PlainExchange()
        assert exchange.receive(payload[:400]) is sasl.Step.MORE
        assert exchange.receive(payload[400:]) is sasl.Step.MORE
        assert exchange.receive("+") is sasl.Step.DONE
        assert exchange.credentials == sasl.Credentials("foo", "b" * 592)

    def test_shorter_last_chunk(self) -> None:
        """
        When the last chunk is shorter than 400, it ends the message.
        """
        payload = plain("", "foo", "bar" * 100)
        exchange = sasl.PlainExchange()
        assert exchange.receive(payload[:400]) is sasl.Step.MORE
        assert exchange.receive(payload[400:]) is sasl.Step.DONE

    def test_errors(self) -> None:
        """
        When a chunk is over 400 bytes, C{*}, or the payload grows forever,
        the exchange says so early.
        """
        assert sasl.PlainExchange().receive("x" * 401) is sasl.Step.TOO_LONG
        assert sasl.PlainExchange().receive("*") is sasl.Step.ABORTED
        exchange = sasl.PlainExchange()
        steps = [exchange.receive("A" * 400) for _ in range(20)]
        assert sasl.Step.FAILED in steps

    def test_bad_credentials(self) -> None:
        """
        When the message is not base64 PLAIN, names another authzid, or has
        an empty name or password, the exchange fails.
        """
        for payload in (
            "!!!",
            plain("other", "foo", "pw"),
            plain("", "", "pw"),
            plain("", "foo", ""),
            base64.b64encode(b"foo\0pw").decode(),
            "+",
        ):
            assert sasl.PlainExchange().receive(payload) is sasl.Step.FAILED, payload


class TestReferences:
    def test_references(self) -> None:
        """
        When a CHATHISTORY reference is a msgid or a timestamp, the server
        reads it; anything else is refused.
        """
        assert parseReference("msgid=1700000000000-3").msgid == "1700000000000-3"  # type: ignore[union-attr]
        reference = parseReference("timestamp=2023-11-14T22:13:20.500Z")
        assert reference is not None and reference.time == 1700000000.5
        for bad in ("msgid=abc", "timestamp=yesterday", "*", "id=1-1"):
            assert parseReference(bad) is None
