"""
Unit tests for L{twisted_chat.core.commands}: parsing a logged-in user's line.
"""

import pytest

from twisted_chat.core.commands import ANSWERS, COMMANDS, ParsedLine, parseLine
from twisted_chat.core.session import SessionCore
from twisted_chat.frontends.line import messages


@pytest.mark.parametrize("text", ["hello", "hi @PM bob", "yes", "no", "exit", "PM"])
def test_plainText(text: str) -> None:
    """When a line is not a command, the server parses it as plain chat."""
    assert parseLine(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@PM bob", ParsedLine("@PM", ("bob",))),
        ("@pm bob", ParsedLine("@PM", ("bob",))),
        ("@Pm   bob  ", ParsedLine("@PM", ("bob",))),
        ("@accept", ParsedLine("@ACCEPT", ())),
        ("@REJECT", ParsedLine("@REJECT", ())),
        ("@who", ParsedLine("@WHO", ())),
        ("@search some text", ParsedLine("@SEARCH", ("some text",))),
        ("@PASSWORD old new", ParsedLine("@PASSWORD", ("old", "new"))),
        ("@heartbeat", ParsedLine("@HEARTBEAT", ())),
        ("@Help", ParsedLine("@HELP", ())),
        ("exit pm", ParsedLine("EXIT PM", ())),
        ("Exit   PM", ParsedLine("EXIT PM", ())),
        ("logout", ParsedLine("LOGOUT", ())),
        (" LogOut ", ParsedLine("LOGOUT", ())),
        ("y", ParsedLine("Y", ())),
        ("N", ParsedLine("N", ())),
    ],
)
def test_commandsCaseInsensitive(text: str, expected: ParsedLine) -> None:
    """When a command is written in any case, the server parses it the same way."""
    assert parseLine(text) == expected


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("@PM", "@PM"),
        ("@PM a b", "@PM"),
        ("@SEARCH", "@SEARCH"),
        ("@SEARCH   ", "@SEARCH"),
        ("@PASSWORD onlyone", "@PASSWORD"),
        ("@PASSWORD a b c", "@PASSWORD"),
        ("@WHO #a #b", "@WHO"),
        ("@LEAVE #a #b", "@LEAVE"),
        ("@JOIN", "@JOIN"),
    ],
)
def test_wrongArguments(text: str, name: str) -> None:
    """When a command has the wrong number of arguments, the server marks it so."""
    assert parseLine(text) == ParsedLine(name, None)


def test_unknownCommand() -> None:
    """When a line starts with an unknown @word, the server parses it as unknown."""
    parsed = parseLine("@foo bar")
    assert parsed == ParsedLine("@FOO", None)
    assert parsed.name not in COMMANDS


def test_logoutWithTextIsChat() -> None:
    """When LOGOUT is followed by more words, the server treats it as chat."""
    assert parseLine("logout now") is None


def test_everyCommandHasHandler() -> None:
    """When a command is in the table, the server has a handler method for it."""
    for name, spec in COMMANDS.items():
        assert callable(getattr(SessionCore, spec.handler, None)), name
    assert set(ANSWERS) == {"Y", "N"}


def test_helpListsEveryCommand() -> None:
    """When the command table is read, the server names every command in @HELP."""
    helpText = "\n".join(messages.HELP)
    for name in COMMANDS:
        assert name in helpText, name
    assert "Y" in helpText
    assert "N" in helpText
