"""
Where Redis is: the C{redis://} and C{rediss://} URLs of C{--hub}, parsed
without importing the Redis client (which installs a reactor on import).
"""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class RedisAddress:
    """
    Where Redis is, from a C{redis://} or C{rediss://} (TLS) URL.
    """

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    password: str | None = None
    username: str | None = None
    tls: bool = False

    @classmethod
    def fromURL(cls, url: str) -> "RedisAddress":
        """
        Parse C{redis://[[user]:password@]host[:port][/db]}.

        @raise ValueError: if C{url} is not such a URL.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"{url!r} is not a redis:// or rediss:// URL")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"{url!r}: the database must be a number")
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or 6379,
            db=int(path or 0),
            password=unquote(parts.password) if parts.password else None,
            username=unquote(parts.username) if parts.username else None,
            tls=parts.scheme == "rediss",
        )
