"""
twisted.words as an IRC server for the benchmark: the same-framework peer.

C{twistd words --group} crashes on Python 3 (its tap module calls
C{str.decode}), so this script builds what it would: an L{IRCFactory} over an
L{InMemoryWordsRealm} that creates users and groups on request, behind a
checker that lets any name in with any password (clients send C{PASS}
before C{NICK}, as twisted.words expects).  It listens on loopback only.

    python bench/peers/words_server.py --port 16667
"""

from __future__ import annotations

import argparse
import sys

from twisted.cred import credentials, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer, endpoints
from twisted.python import log
from twisted.words import service
from zope.interface import implementer


@implementer(ICredentialsChecker)
class AnyNameChecker:
    """
    Accept every username/password pair: the benchmark measures chat
    delivery, not authentication.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def requestAvatarId(
        self, creds: credentials.IUsernamePassword
    ) -> defer.Deferred[bytes | str]:
        return defer.succeed(creds.username)


def main(argv: list[str] | None = None) -> None:
    """
    Parse the options, listen, run the reactor.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=16667)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true", help="log to stderr")
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    if args.verbose:
        log.startLogging(sys.stderr)
    realm = service.InMemoryWordsRealm("bench.local")
    realm.createGroupOnRequest = True
    realm.createUserOnRequest = True
    factory = service.IRCFactory(realm, portal.Portal(realm, [AnyNameChecker()]))
    endpoint = endpoints.TCP4ServerEndpoint(
        reactor, args.port, backlog=1024, interface=args.interface
    )
    endpoint.listen(factory).addCallback(
        lambda port: print(f"words listening on {port.getHost()}", flush=True)
    )
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
