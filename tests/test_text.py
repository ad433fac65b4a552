"""
Unit tests for L{twisted_chat.text}: cleaning relayed text and the name rules.
"""

import pytest

from twisted_chat.core.text import MAX_NAME_LENGTH, clean, foldName, normalizeName

TURKISH = "Çok güzel! Şimdi ığüşöç İĞÜŞÖÇ dağ, ılık."  # noqa: RUF001


def test_cleanKeepsPlainText() -> None:
    """When a line is printable ASCII, the server keeps it unchanged."""
    assert clean("hello, world! 1 + 1 = 2") == "hello, world! 1 + 1 = 2"


def test_cleanKeepsTurkish() -> None:
    """When a line holds Turkish letters, the server keeps every one of them."""
    assert clean(TURKISH) == TURKISH


def test_cleanKeepsTab() -> None:
    """When a line holds a tab, the server keeps it: tab is harmless."""
    assert clean("a\tb") == "a\tb"


@pytest.mark.parametrize(
    "char", [chr(c) for c in [*range(0, 9), *range(10, 32), 0x7F, *range(0x80, 0xA0)]]
)
def test_cleanRemovesControls(char: str) -> None:
    """When a line holds a C0 (not tab), DEL or C1 control, the server drops it."""
    if char in "\x1b\x9b\x9d":
        # Escape introducers also swallow the sequence they start.
        assert clean(f"a{char}") == "a"
    else:
        assert clean(f"a{char}b") == "ab"


@pytest.mark.parametrize(
    "char",
    [
        *("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067"),
        *("\u2068", "\u2069", "\u200e", "\u200f", "\u061c"),
    ],
)
def test_cleanRemovesBidi(char: str) -> None:
    """When a line holds a bidirectional override or isolate, the server drops it."""
    assert clean(f"abc{char}def") == "abcdef"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[2Jhi", "hi"),
        ("\x1b[1;31mred\x1b[0m", "red"),
        ("\x1b]0;new title\x07after", "after"),
        ("\x1b]0;new title\x1b\\after", "after"),
        ("\x9b2Jhi", "hi"),
        ("a\x1bcb", "ab"),
        ("tail\x1b", "tail"),
    ],
)
def test_cleanRemovesEscapeSequencesWhole(raw: str, expected: str) -> None:
    """When a line holds a terminal escape sequence, the server drops all of it."""
    assert clean(raw) == expected


@pytest.mark.parametrize(
    "name", ["alice", "Bob_2", "x", "a-b", "Şebnem", "ığüşöç", "名前", "a" * 32]
)
def test_validNames(name: str) -> None:
    """When a name is 1-32 letters, digits, _ or -, the server accepts it as is."""
    assert normalizeName(name) == name


@pytest.mark.parametrize(
    "name",
    ["", " ", "a" * (MAX_NAME_LENGTH + 1), "al ice", "bob!", "a.b", "x\u202ey", "@PM"],
)
def test_invalidNames(name: str) -> None:
    """When a name breaks the rules, the server refuses it."""
    assert normalizeName(name) is None


def test_nameNormalisedWithNFKC() -> None:
    """When a name is written in full-width letters, the server uses its NFKC form."""
    assert normalizeName("\uff41\uff4c\uff49\uff43\uff45") == "alice"


def test_nameStripped() -> None:
    """When a name has surrounding spaces, the server strips them."""
    assert normalizeName("  alice \t") == "alice"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Hakan", "hakan"),
        ("HAKAN", "hakan"),
        ("Straße", "STRASSE"),
        ("\uff41\uff4c\uff49\uff43\uff45", "ALICE"),
    ],
)
def test_foldNameUnifiesCase(first: str, second: str) -> None:
    """When two names differ only by case or width, the server folds them alike."""
    assert foldName(first) == foldName(second)


def test_foldNameDistinguishesNames() -> None:
    """When two names differ by letters, the server keeps them apart."""
    assert foldName("alice") != foldName("alicia")
