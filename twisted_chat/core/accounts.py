"""
What the session core needs of an account store, whichever keeps the
accounts (a file on one node, Redis for several).
"""

from enum import Enum

from twisted.internet.defer import Deferred
from zope.interface import Interface


class AuthResult(Enum):
    """
    The outcome of a login attempt.
    """

    REGISTERED = "registered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class IAccountStore(Interface):
    """
    Accounts, looked up and changed asynchronously so that a store may live
    in another process (Redis) as well as in a local file.
    """

    def lookup(name: str) -> "Deferred[str | None]":
        """
        The display name of the account C{name} (any case), or L{None}.
        """

    def authenticate(name: str, password: str) -> "Deferred[tuple[AuthResult, str]]":
        """
        Log in as C{name}, registering it if unknown.  Fires with the outcome
        and the account's display name once a new account is durable.
        """

    def changePassword(name: str, old: str, new: str) -> "Deferred[bool]":
        """
        Replace the password of C{name} if C{old} is right; fire with whether
        it was.
        """

    def search(text: str) -> "Deferred[list[str]]":
        """
        The display names containing C{text} (any case), sorted by folded name.
        """

    def drain() -> "Deferred[None]":
        """
        Fire once every hash and write under way has finished.
        """
