"""
Parsing a logged-in user's line into a command, and the one table of
commands, which names the L{twisted_chat.core.session.SessionCore} method
that carries each out.

Pure functions and data: no network, no state.
"""

import re
from dataclasses import dataclass

_EXIT_PM = re.compile(r"exit\s+pm", re.IGNORECASE)


@dataclass(frozen=True)
class CommandSpec:
    """
    How a command is called: the session core's method that carries it out,
    its usage text, how many arguments it takes and how many more it may
    take.  C{rest} commands take the rest of the line as one argument.
    """

    handler: str
    usage: str
    arguments: int = 0
    rest: bool = False
    optional: int = 0


COMMANDS: dict[str, CommandSpec] = {
    "@PM": CommandSpec("requestPrivateChat", "@PM <user>", 1),
    "@ACCEPT": CommandSpec("accept", "@ACCEPT"),
    "@REJECT": CommandSpec("reject", "@REJECT"),
    "@WHO": CommandSpec("who", "@WHO [#room]", optional=1),
    "@JOIN": CommandSpec("joinRoom", "@JOIN #room", 1),
    "@LEAVE": CommandSpec("leaveRoom", "@LEAVE [#room]", optional=1),
    "@ROOMS": CommandSpec("listRooms", "@ROOMS"),
    "@HISTORY": CommandSpec("history", "@HISTORY [N]", optional=1),
    "@SEARCH": CommandSpec("search", "@SEARCH <text>", 1, rest=True),
    "@PASSWORD": CommandSpec("changePassword", "@PASSWORD <old> <new>", 2),
    "@HEARTBEAT": CommandSpec("heartbeat", "@HEARTBEAT"),
    "@HELP": CommandSpec("help", "@HELP"),
    "EXIT PM": CommandSpec("leavePrivateChat", "EXIT PM"),
    "LOGOUT": CommandSpec("logOut", "LOGOUT"),
}

ANSWERS = {"Y": True, "N": False}


@dataclass(frozen=True)
class ParsedLine:
    """
    A command line: the command's canonical (upper-case) name and its
    arguments, or C{arguments=None} if they do not fit its L{CommandSpec}.
    """

    name: str
    arguments: tuple[str, ...] | None


def parseLine(text: str) -> ParsedLine | None:
    """
    Parse one line from a logged-in user.

    @return: the command, or L{None} if C{text} is plain chat.  C{Y} and
        C{N} come back as commands; they are chat unless a request is pending.
    """
    stripped = text.strip()
    if stripped.startswith("@"):
        word, _, rest = stripped.partition(" ")
        name = word.upper()
        spec = COMMANDS.get(name)
        if spec is None:
            return ParsedLine(name, None)
        return ParsedLine(name, _arguments(spec, rest.strip()))
    upper = stripped.upper()
    if upper in ANSWERS or upper == "LOGOUT":
        return ParsedLine(upper, ())
    if _EXIT_PM.fullmatch(stripped):
        return ParsedLine("EXIT PM", ())
    return None


def _arguments(spec: CommandSpec, rest: str) -> tuple[str, ...] | None:
    if spec.rest:
        return (rest,) if rest else None
    arguments = tuple(rest.split())
    fits = spec.arguments <= len(arguments) <= spec.arguments + spec.optional
    return arguments if fits else None
