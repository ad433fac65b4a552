"""
How the front-ends write a time for clients: ISO 8601 in UTC to the
millisecond (IRCv3's server-time tag, the web's C{time} field).
"""

import time
from functools import lru_cache


def isoTime(seconds: float) -> str:
    """
    C{seconds} since the epoch as C{YYYY-MM-DDTHH:MM:SS.mmmZ}: rounded to
    the microsecond first, as C{datetime} does (so that the float of a
    time given in milliseconds shows those), then the milliseconds cut.
    """
    whole = int(seconds)
    micros = round((seconds - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole += 1
        micros -= 1_000_000
    return f"{_isoSecond(whole)}.{micros // 1000:03d}Z"


@lru_cache(maxsize=4)
def _isoSecond(seconds: int) -> str:
    """
    C{YYYY-MM-DDTHH:MM:SS} of a whole second: the same for every line of
    that second, so formatted once.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
