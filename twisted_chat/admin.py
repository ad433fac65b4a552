"""
Administration commands.

C{python -m twisted_chat.admin import-users --hub redis://... users.json}
copies the accounts of a C{users.json} into the Redis store that nodes run
with C{--hub} share.  Accounts that already exist in Redis are kept.
"""

import sys
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react
from twisted.python import usage

from .redis.accounts import RedisAccountStore
from .redis.address import RedisAddress
from .redis.connection import RedisConnection
from .stores.accounts import AccountFile, AccountFileError
from .stores.passwords import PasswordHashing


class ImportUsersOptions(usage.Options):
    synopsis = "--hub redis://host:port/db PATH"
    optParameters = [["hub", None, None, "The Redis URL the nodes use."]]

    # usage.Options counts the positional arguments from this signature.
    def parseArgs(self, path: str) -> None:  # type: ignore[override]
        self["path"] = path

    def postOptions(self) -> None:
        if not self["hub"]:
            raise usage.UsageError("--hub is required")
        try:
            RedisAddress.fromURL(self["hub"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None


class Options(usage.Options):
    synopsis = "COMMAND [options]"
    subCommands = [
        ["import-users", None, ImportUsersOptions, "Copy users.json into Redis."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a command is needed")


async def importUsers(reactor: Any, path: str, url: str) -> int:
    """
    Import the accounts of the file at C{path} into the Redis at C{url}.
    """
    try:
        with open(path, "rb") as f:
            content = AccountFile.parse(f.read(), path)
    except (OSError, AccountFileError) as e:
        print(f"import-users: {e}", file=sys.stderr)
        return 1
    ready: Deferred[None] = Deferred()
    redis = RedisConnection(
        reactor, RedisAddress.fromURL(url), onAvailable=lambda: ready.callback(None)
    )
    redis.start()
    ready.addTimeout(10, reactor)
    try:
        await ready
        store = RedisAccountStore(
            redis, PasswordHashing(reactor, reactor.getThreadPool())
        )
        imported, kept = await store.importAccounts(list(content.accounts.values()))
    finally:
        await redis.stop()
    print(f"Imported {imported} accounts; {kept} already existed and were kept.")
    for entry in content.unusable:
        print(f"Not imported (invalid or duplicate name): {entry!r}")
    return 0


async def main(reactor: Any, *argv: str) -> None:
    """
    Run one administration command; exit non-zero if it failed.
    """
    options = Options()  # type: ignore[no-untyped-call]  # usage.Options.__init__
    try:
        usage.Options.parseOptions(options, argv)
    except usage.UsageError as e:
        print(f"{options}\n{e}", file=sys.stderr)
        raise SystemExit(2) from None
    sub = options.subOptions
    code = await importUsers(reactor, sub["path"], sub["hub"])
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor, *sys.argv[1:])))
