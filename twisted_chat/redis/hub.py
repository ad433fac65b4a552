"""
The hub of several nodes that form one chat over Redis.

Shared state lives in Redis and changes only inside Lua scripts, so each
change is atomic across nodes: who is online where (C{tc:online}), who is
paired with whom (C{tc:partner}), pending private-chat requests
(C{tc:request}), the rooms that have members (C{tc:rooms}), each room's
members (C{tc:room:<room>}) and each user's rooms (C{tc:in:<user>}), the
users of each node, and a liveness key per node.  A room's history is one
Redis Stream (C{tc:history:<room>}, trimmed to about C{--history-lines}).

Lines travel by pub/sub.  A room's lines, and who joins or leaves it, are
published on the room's channel (C{tc:room:<room>}) as LF-separated fields
(the kind, the user's key, origin and name, then for a line its id and
text).  A node sends the lines its users say in batches, one script call per
batch, at most one per step of L{LINE_BATCH_INTERVAL} seconds on the clock
(the same steps on every node; a lone line goes at once), and the lines of
one batch for one room are one message; a node subscribes to a room's
channel while one of its own users is in the room, so its work grows with
its own users' rooms.  A departure from the chat goes once to every node
(C{tc:quit}), which tells the local members of the departed user's rooms,
each once.  A notification for one user
(L{twisted_chat.core.events.encode}) and the control operations of private
chats go as JSON to the channel of the node holding that user's session
(C{tc:to:<node>}).  Each node mirrors its own sessions' rooms
(L{LocalRooms}), so a room's line costs it one fan-out loop.
"""

import json
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..batch import PassBatch
from ..core.events import (
    ChatLine,
    HistoryEntry,
    PrivateLine,
    Request,
    RequestResult,
    RoomInfo,
    RoomJoined,
    RoomLeft,
    UserJoined,
    UserLeft,
    UserStatus,
    decode,
    encode,
)
from ..core.history import Around, HistoryQuery, Reference
from ..core.hub import (
    GENERAL_KEY,
    REQUEST_TIMEOUT,
    Departure,
    HubUnavailableError,
    IChatClient,
    IHub,
    Join,
    Joined,
    Left,
    PrivateEnded,
    Session,
)
from ..core.rooms import LocalRooms, MessageIds, Room
from ..core.text import GENERAL, foldName
from .address import RedisAddress
from .connection import MAX_RECONNECT_DELAY, RedisConnection

ROOM_CHANNEL = "tc:room:{room}"
QUIT_CHANNEL = "tc:quit"
NODE_CHANNEL = "tc:to:{node}"

# The step, in seconds, of the grid on which a node sends its users' lines
# to Redis while they keep talking (a lone line goes at the end of its
# reactor pass): under load one script call and one message per room carry
# every line of the step, to Redis and to every node, instead of one each.
# Each message a node receives is a write to each of its users in the room,
# with Nagle's algorithm off on a hub, so the step sets how many writes a
# user costs a second: 10 ms rather than 5 ms gave three nodes about 40%
# more deliveries per CPU-second, for 2.5 to 5 ms more median latency.
LINE_BATCH_INTERVAL = 0.010

# Helpers shared by the scripts below: send operations to the node holding a
# user, tell a user of an event, enter and leave rooms, and take a user
# offline.
_PRELUDE = """
local function send(k, ops)
  local rec = redis.call('HGET', 'tc:online', k)
  if rec then
    redis.call('PUBLISH', 'tc:to:' .. cjson.decode(rec).n, cjson.encode(ops))
  end
end
local function event(k, kind, name)
  return {'ev', k, {kind, name}}
end
local function nameOf(k)
  local rec = redis.call('HGET', 'tc:online', k)
  if rec then return cjson.decode(rec).name end
  return k
end
local function enterRoom(k, name, room, display)
  local existing = redis.call('HGET', 'tc:rooms', room)
  if existing then display = existing end
  redis.call('HSET', 'tc:rooms', room, display)
  redis.call('HSET', 'tc:room:' .. room, k, name)
  redis.call('HSET', 'tc:in:' .. k, room, display)
  return display
end
local function exitRoom(k, room)
  redis.call('HDEL', 'tc:room:' .. room, k)
  redis.call('HDEL', 'tc:in:' .. k, room)
  if room ~= '#general' and redis.call('HLEN', 'tc:room:' .. room) == 0 then
    redis.call('HDEL', 'tc:rooms', room)
  end
end
local function setCurrent(k, room)
  local rec = redis.call('HGET', 'tc:online', k)
  if rec then
    local r = cjson.decode(rec)
    r.c = room
    redis.call('HSET', 'tc:online', k, cjson.encode(r))
  end
end
local function leave(k, sid, reason)
  local rec = redis.call('HGET', 'tc:online', k)
  if not rec then return false end
  local r = cjson.decode(rec)
  if sid ~= '' and r.s ~= sid then return false end
  local req = redis.call('HGET', 'tc:request', k)
  if req then
    local q = cjson.decode(req)
    redis.call('HDEL', 'tc:request', q.r, q.t)
    if q.r == k then
      send(q.t, {event(q.t, 'RequestFromCancelled', r.name)})
    else
      send(q.r, {event(q.r, 'RequestToCancelled', r.name)})
    end
  end
  local partner = redis.call('HGET', 'tc:partner', k)
  local partnerName = ''
  if partner then
    redis.call('HDEL', 'tc:partner', k, partner)
    partnerName = nameOf(partner)
    send(partner, {event(partner, 'PartnerLeft', r.name), {'unpair', partner}})
  end
  local rooms = redis.call('HKEYS', 'tc:in:' .. k)
  for _, room in ipairs(rooms) do exitRoom(k, room) end
  redis.call('HDEL', 'tc:online', k)
  redis.call('SREM', 'tc:node:' .. r.n, k)
  local quit = k .. '\\n' .. (r.o or 'line') .. '\\n' .. r.name .. '\\n'
    .. table.concat(rooms, ' ') .. '\\n' .. reason
  redis.call('PUBLISH', 'tc:quit', quit)
  return {r.name, partnerName}
end
local function reap(node)
  local gone = 'tc:gone:' .. node
  for _, k in ipairs(redis.call('SMEMBERS', 'tc:node:' .. node)) do
    if leave(k, '', '') then redis.call('SADD', gone, k) end
  end
  redis.call('EXPIRE', gone, 86400)
  redis.call('DEL', 'tc:node:' .. node)
  redis.call('SREM', 'tc:nodes', node)
end
"""

# ARGV: key, node, sid, name, origin.  Returns {takeover, old node, old sid,
# partner key, the user's rooms (room, display, ...), current room}.
_ATTACH = (
    _PRELUDE
    + """
local k, node, sid = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', 'tc:online', k)
local current = '#general'
if old then current = cjson.decode(old).c or '#general' end
local rec = {n = node, s = sid, name = ARGV[4], c = current, o = ARGV[5]}
redis.call('HSET', 'tc:online', k, cjson.encode(rec))
redis.call('SADD', 'tc:node:' .. node, k)
local partner = redis.call('HGET', 'tc:partner', k) or ''
if old then
  local o = cjson.decode(old)
  if o.n ~= node then
    redis.call('SREM', 'tc:node:' .. o.n, k)
    redis.call('PUBLISH', 'tc:to:' .. o.n, cjson.encode({{'supersede', k, o.s}}))
  end
  return {1, o.n, o.s, partner, redis.call('HGETALL', 'tc:in:' .. k), current}
end
local joined = 'J\\n' .. k .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[4]
redis.call('PUBLISH', 'tc:room:#general', joined)
enterRoom(k, ARGV[4], '#general', '#general')
return {0, '', '', partner, {'#general', '#general'}, current}
"""
)

# ARGV: key, sid ('' for any), reason.  Returns {name, partner name} or
# false if the session was not the one online.
_DETACH = _PRELUDE + "return leave(ARGV[1], ARGV[2], ARGV[3])"

# ARGV: history ('' for none, '0' for no limit, else about how many lines to
# keep per room), then six for each line: room, key, name, text, origin, kind
# ('s' a line, 'n' a notice).  Keeps each line in its room's stream, whose id
# is the line's, and publishes the lines of each room, in order, as one
# message: their records (kind, key, origin, name, id, text) joined by LF.
_SAY = """
local history = ARGV[1]
local byRoom, rooms = {}, {}
local t, seq = nil, 0
for i = 2, #ARGV, 6 do
  local room, key, name = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local text, origin = ARGV[i + 3], ARGV[i + 4]
  local stream = 'tc:history:' .. room
  local id
  if history == '0' then
    id = redis.call('XADD', stream, '*', 'n', name, 'x', text, 'o', origin)
  elseif history ~= '' then
    id = redis.call('XADD', stream, 'MAXLEN', '~', history, '*',
                    'n', name, 'x', text, 'o', origin)
  else
    t = t or redis.call('TIME')
    id = t[1] .. string.format('%03d', math.floor(t[2] / 1000)) .. '-' .. seq
    seq = seq + 1
  end
  local record = ARGV[i + 5] .. '\\n' .. key .. '\\n' .. origin .. '\\n' .. name
    .. '\\n' .. id .. '\\n' .. text
  local lines = byRoom[room]
  if lines then
    lines[#lines + 1] = record
  else
    byRoom[room] = {record}
    rooms[#rooms + 1] = room
  end
end
for _, room in ipairs(rooms) do
  redis.call('PUBLISH', 'tc:room:' .. room, table.concat(byRoom[room], '\\n'))
end
"""

# ARGV: room, XRANGE or XREVRANGE, the two ends (in that command's order),
# count.  The room's lines in that range.
_HISTORY = """
return redis.call(ARGV[2], 'tc:history:' .. ARGV[1], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
"""

# The largest sequence number of a stream id.
_LAST_SEQUENCE = 2**64 - 1


def _after(reference: Reference, inclusive: bool = False) -> str:
    """
    The stream id bound for the lines after C{reference}.
    """
    if reference.msgid is not None:
        return reference.msgid if inclusive else "(" + reference.msgid
    if inclusive:
        return f"{reference.ms}-0"
    return f"({reference.ms}-{_LAST_SEQUENCE}"


def _before(reference: Reference) -> str:
    """
    The stream id bound for the lines before C{reference}.
    """
    return "(" + (reference.msgid or f"{reference.ms}-0")


# ARGV: key, room, room's name as typed, user's name, rooms per user, rooms,
# origin.  Returns {outcome, room's name, member count}.
_JOIN = (
    _PRELUDE
    + """
local k, room = ARGV[1], ARGV[2]
local have = redis.call('HGET', 'tc:in:' .. k, room)
if have then
  setCurrent(k, room)
  return {'ALREADY_IN', have, redis.call('HLEN', 'tc:room:' .. room)}
end
local perUser, total = tonumber(ARGV[5]), tonumber(ARGV[6])
if perUser > 0 and redis.call('HLEN', 'tc:in:' .. k) >= perUser then
  return {'TOO_MANY_JOINED', ARGV[3], 0}
end
local existing = redis.call('HGET', 'tc:rooms', room)
if not existing and total > 0 and redis.call('HLEN', 'tc:rooms') >= total then
  return {'TOO_MANY_ROOMS', ARGV[3], 0}
end
local joined = 'j\\n' .. k .. '\\n' .. ARGV[7] .. '\\n' .. ARGV[4]
redis.call('PUBLISH', 'tc:room:' .. room, joined)
local display = enterRoom(k, ARGV[4], room, ARGV[3])
setCurrent(k, room)
return {'JOINED', display, redis.call('HLEN', 'tc:room:' .. room)}
"""
)

# ARGV: key, room, user's name, the current room after ('' if unchanged),
# origin, reason.  Returns {room's name, #general's member count} or false.
_LEAVE_ROOM = (
    _PRELUDE
    + """
local k, room = ARGV[1], ARGV[2]
local have = redis.call('HGET', 'tc:in:' .. k, room)
if not have then return false end
exitRoom(k, room)
local left = 'l\\n' .. k .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[6]
redis.call('PUBLISH', 'tc:room:' .. room, left)
if ARGV[4] ~= '' then setCurrent(k, ARGV[4]) end
return {have, redis.call('HLEN', 'tc:room:#general')}
"""
)

# Returns {room, name, member count, ...} for the rooms that have members.
_ROOMS = """
local out = {}
local all = redis.call('HGETALL', 'tc:rooms')
for i = 1, #all, 2 do
  local count = redis.call('HLEN', 'tc:room:' .. all[i])
  if count > 0 then
    table.insert(out, all[i])
    table.insert(out, all[i + 1])
    table.insert(out, count)
  end
end
return out
"""

# ARGV: room.  Returns {name, {member's name, origin, ...}} or false.
_MEMBERS = """
local name = redis.call('HGET', 'tc:rooms', ARGV[1])
if not name then return false end
local members = {}
local all = redis.call('HGETALL', 'tc:room:' .. ARGV[1])
for i = 1, #all, 2 do
  local rec = redis.call('HGET', 'tc:online', all[i])
  table.insert(members, all[i + 1])
  table.insert(members, rec and cjson.decode(rec).o or 'line')
end
return {name, members}
"""

# ARGV: key, an encoded notification.
_NOTIFY = (
    _PRELUDE
    + """
if redis.call('HEXISTS', 'tc:online', ARGV[1]) == 0 then return 0 end
send(ARGV[1], {{'ev', ARGV[1], cjson.decode(ARGV[2])}})
return 1
"""
)

# ARGV: requester key, target key, request id.
_REQUEST = (
    _PRELUDE
    + """
local k, t = ARGV[1], ARGV[2]
local p = redis.call('HGET', 'tc:partner', k)
if p then return {'ALREADY_IN_PM', nameOf(p)} end
local req = redis.call('HGET', 'tc:request', k)
if req then
  local q = cjson.decode(req)
  if q.r == k then return {'ALREADY_ASKED', q.tn} end
  return {'BEING_ASKED', q.rn}
end
if t == k then return {'SELF', nameOf(k)} end
local target = redis.call('HGET', 'tc:online', t)
if not target then return {'OFFLINE', ''} end
local tname = cjson.decode(target).name
if redis.call('HEXISTS', 'tc:partner', t) == 1 then return {'TARGET_IN_PM', tname} end
if redis.call('HEXISTS', 'tc:request', t) == 1 then
  return {'TARGET_HAS_REQUEST', tname}
end
local rname = nameOf(k)
local v = cjson.encode({r = k, t = t, rn = rname, tn = tname, id = ARGV[3]})
redis.call('HSET', 'tc:request', k, v)
redis.call('HSET', 'tc:request', t, v)
send(t, {event(t, 'PrivateRequest', rname)})
return {'SENT', tname}
"""
)

# ARGV: requester key, request id.
_EXPIRE = (
    _PRELUDE
    + """
local req = redis.call('HGET', 'tc:request', ARGV[1])
if not req then return 0 end
local q = cjson.decode(req)
if q.id ~= ARGV[2] then return 0 end
redis.call('HDEL', 'tc:request', q.r, q.t)
send(q.r, {event(q.r, 'RequestToExpired', q.tn)})
send(q.t, {event(q.t, 'RequestFromExpired', q.rn)})
return 1
"""
)

# ARGV: target key, '1' to accept.  Returns {requester name, requester key}
# or false.
_ANSWER = (
    _PRELUDE
    + """
local k = ARGV[1]
local req = redis.call('HGET', 'tc:request', k)
if not req then return false end
local q = cjson.decode(req)
if q.t ~= k then return false end
redis.call('HDEL', 'tc:request', q.r, q.t)
if ARGV[2] == '1' then
  redis.call('HSET', 'tc:partner', q.r, q.t)
  redis.call('HSET', 'tc:partner', q.t, q.r)
  send(q.r, {event(q.r, 'PrivateStarted', q.tn), {'pair', q.r, q.t}})
else
  send(q.r, {event(q.r, 'PrivateRejected', q.tn)})
end
return {q.rn, q.r}
"""
)

# ARGV: key.  Returns the partner's name or false.
_LEAVE_PRIVATE_CHAT = (
    _PRELUDE
    + """
local k = ARGV[1]
local p = redis.call('HGET', 'tc:partner', k)
if not p then return false end
redis.call('HDEL', 'tc:partner', k, p)
send(p, {event(p, 'PartnerLeft', nameOf(k)), {'unpair', p}})
return nameOf(p)
"""
)

_ONLINE = """
return {redis.call('HGETALL', 'tc:online'), redis.call('HGETALL', 'tc:partner')}
"""

# ARGV: node, liveness TTL in ms, '1' to reap.  Refreshes this node's
# liveness and, if asked to, takes the users of dead nodes offline.  Returns
# 1 if this node had itself been taken for dead (its liveness key expired
# during a stall and another node reaped it), else 0.
_HEARTBEAT = (
    _PRELUDE
    + """
local node = ARGV[1]
redis.call('SET', 'tc:alive:' .. node, '1', 'PX', ARGV[2])
local reaped = redis.call('SADD', 'tc:nodes', node)
if ARGV[3] == '1' then
  for _, other in ipairs(redis.call('SMEMBERS', 'tc:nodes')) do
    if redis.call('EXISTS', 'tc:alive:' .. other) == 0 then reap(other) end
  end
end
return reaped
"""
)

# ARGV: node, sessions (JSON {key: [sid, name, {room: name}, current,
# origin]}).
# After Redis came back, or another node took this one for dead: drop the
# users who left meanwhile, put the others back online and in their rooms,
# and return {key, partner key} pairs and superseded keys.  A user whose
# departure the reaping node published (its key in tc:gone:<node>) comes
# back as a 'B' (#general) or 'b' (another room) on each of its rooms'
# channels, which the node holding it ignores.
_RESYNC = (
    _PRELUDE
    + """
local node = ARGV[1]
local current = cjson.decode(ARGV[2])
local gone = 'tc:gone:' .. node
for _, k in ipairs(redis.call('SMEMBERS', 'tc:node:' .. node)) do
  if current[k] == nil then leave(k, '', '') end
end
local partners, superseded = {}, {}
for k, v in pairs(current) do
  local rec = redis.call('HGET', 'tc:online', k)
  local r = rec and cjson.decode(rec)
  if r and (r.n ~= node or r.s ~= v[1]) then
    table.insert(superseded, k)
  else
    local online = {n = node, s = v[1], name = v[2], c = v[4], o = v[5]}
    redis.call('HSET', 'tc:online', k, cjson.encode(online))
    redis.call('SADD', 'tc:node:' .. node, k)
    local back = not r and redis.call('SISMEMBER', gone, k) == 1
    for room, display in pairs(v[3]) do
      if back then
        local kind = room == '#general' and 'B' or 'b'
        local record = kind .. '\\n' .. k .. '\\n' .. v[5] .. '\\n' .. v[2]
        redis.call('PUBLISH', 'tc:room:' .. room, record)
      end
      enterRoom(k, v[2], room, display)
    end
    local p = redis.call('HGET', 'tc:partner', k)
    if p then table.insert(partners, k); table.insert(partners, p) end
  end
end
redis.call('DEL', gone)
redis.call('SADD', 'tc:nodes', node)
return {partners, superseded}
"""
)

# The kinds of the resync's room messages for a user back after its node was
# taken for dead, and the join each is told as.
_BACK = {"B": "J", "b": "j"}

_REQUEST_OUTCOMES = {outcome.name: outcome for outcome in Request}
_JOIN_OUTCOMES = {outcome.name: outcome for outcome in Join}


class _HeldLine(NamedTuple):
    """
    A line said on this node, held to go to Redis with others.
    """

    room: str
    session: Session
    text: str
    notice: bool


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _entry(record: list[Any]) -> HistoryEntry:
    """
    A history entry from a stream record C{[id, [field, value, ...]]}.
    """
    msgid, fields = record
    values = _pairs(fields)
    origin = values.get("o", "line")
    return HistoryEntry(_time(msgid), values["n"], values["x"], msgid, origin)


def _time(msgid: str) -> float:
    """
    The time a line was said, from its id (a stream id: milliseconds first).
    """
    return int(msgid.split("-", 1)[0]) / 1000


@implementer(IHub)
class RedisHub:
    """
    One node's view of a chat shared through Redis.

    @ivar node: this node's id, unique per process start.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        address: RedisAddress,
        ttl: float = 10.0,
        connection: Callable[..., RedisConnection] = RedisConnection,
        history: bool = True,
        historyLines: int = 10000,
        maxRoomsPerUser: int = 0,
        maxRooms: int = 0,
    ) -> None:
        self._clock = reactor
        self.ttl = ttl
        # What the line script is told of history: none, no limit, or about
        # how many lines to keep per room.
        self._history = str(historyLines) if history else ""
        self.maxRoomsPerUser = maxRoomsPerUser
        self.maxRooms = maxRooms
        self.node = uuid.uuid4().hex
        self._nodeChannel = NODE_CHANNEL.format(node=self.node)
        # The lines said on this node, sent to Redis together: at the end of
        # the reactor's pass for a lone line, at most once per step of
        # LINE_BATCH_INTERVAL under load, and before any other command, so
        # that Redis sees every command in the order it was given.  The
        # steps are the same on every node (a grid on the clock), so the
        # nodes' batches reach each node together, in one write per user.
        self._lines: PassBatch[_HeldLine] = PassBatch(
            reactor, self._sendLines, LINE_BATCH_INTERVAL, aligned=True
        )
        self.redis = connection(
            reactor,
            address,
            channels=[self._nodeChannel, QUIT_CHANNEL],
            onMessage=self._messageReceived,
            onAvailable=self._resync,
            beforeCommand=self._lines.flush,
        )
        self._sessions: dict[str, Session] = {}
        self._sids: dict[str, str] = {}
        self._rooms = LocalRooms()
        self._subscribed: set[str] = set()
        self._ids = MessageIds(reactor)
        self._partners: dict[str, str] = {}
        self._reapAfter = 0.0
        self._lastBeat = 0.0
        self._connectedBefore = False
        self._liveness = LoopingCall(self._beat)
        self._liveness.clock = reactor
        # Called for every message from Redis: set to tell the connections'
        # write batching that input came (other nodes' lines are input as
        # much as a local user's).
        self.onInput: Callable[[], None] = lambda: None

    @property
    def sessionCount(self) -> int:
        return len(self._sessions)

    def start(self) -> None:
        self.redis.start()
        self._lastBeat = self._clock.seconds()
        self._liveness.start(self.ttl / 3, now=False)

    def stop(self) -> "Deferred[None]":
        if self._liveness.running:
            self._liveness.stop()
        d = self.redis.call("delete", f"tc:alive:{self.node}")
        d.addCallback(lambda _: self.redis.call("srem", "tc:nodes", self.node))
        d.addErrback(lambda failure: failure.trap(HubUnavailableError))
        return d.addBoth(lambda _: self.redis.stop()).addCallback(lambda _: None)

    def _beat(self) -> None:
        now, lasts = self._clock.seconds(), self.ttl * 2 / 3
        if now - self._lastBeat > lasts:
            # This node stalled for longer than a liveness lasts: the others
            # may have stalled with it (one machine, a paused VM), so they
            # get a liveness of time to beat again before any is reaped.
            self._reapAfter = max(self._reapAfter, now + lasts)
        self._lastBeat = now
        reap = "1" if now >= self._reapAfter else "0"
        liveness = int(lasts * 1000)
        d = self.redis.script(_HEARTBEAT, self.node, liveness, reap)
        d.addCallback(self._beaten)
        d.addErrback(self._ignoreUnavailable)

    def _beaten(self, reaped: int) -> None:
        """
        If another node took this one for dead and took its users offline
        (this node stalled for longer than its liveness lasts), put them
        back, as after Redis came back.
        """
        if reaped:
            self.log.warn(
                "Another node took this one for dead (a stall of over "
                "{seconds:.1f} s?); putting its sessions back",
                seconds=self.ttl * 2 / 3,
            )
            self._resync()

    def _ignoreUnavailable(self, failure: Failure) -> None:
        failure.trap(HubUnavailableError)

    def _resync(self) -> None:
        """
        Redis is (back) up, or another node took this one for dead: put this
        node's sessions back online and in their rooms, drop those that
        ended meanwhile, and reload their private-chat partners.  The users
        the other nodes saw leave are announced back to them.
        """
        if self._connectedBefore:
            # Every node lost Redis too, and their liveness keys may have
            # expired meanwhile: give them time to come back before reaping.
            grace = self.ttl + 2 * MAX_RECONNECT_DELAY
            self._reapAfter = self._clock.seconds() + grace
        self._connectedBefore = True
        current = {
            key: [
                self._sids[key],
                session.name,
                session.rooms,
                session.current,
                session.origin,
            ]
            for key, session in self._sessions.items()
        }
        d = self.redis.script(
            _RESYNC, self.node, json.dumps(current) if current else "{}"
        )
        d.addCallback(self._resynced)
        d.addErrback(self._ignoreUnavailable)
        self._beat()

    def _resynced(self, reply: list[Any]) -> None:
        pairs, superseded = reply
        self._partners = {
            pairs[i]: pairs[i + 1]
            for i in range(0, len(pairs), 2)
            if pairs[i] in self._sessions
        }
        for session in self._sessions.values():
            self._rooms.show(session)
            if self._hidden(session):
                self._rooms.hide(session)
        for key in superseded:
            self._supersede(key, self._sids.get(key, ""))

    def _hidden(self, session: Session) -> bool:
        return (
            session.key in self._partners and session.client.renderer.privateHidesRooms
        )

    def _subscribeFirst(self, room: str) -> "Deferred[None]":
        """
        Listen to the room C{room} before a user of this node enters it, so
        that no line said meanwhile is missed; fire once listening (the
        next L{_syncSubscriptions} stops again if the user did not enter).
        """
        if room in self._subscribed:
            return succeed(None)
        self._subscribed.add(room)
        return self.redis.subscribe(ROOM_CHANNEL.format(room=room))

    def _stopListening(self, failure: Failure) -> Failure:
        """
        A user did not enter a room after all: listen only to the rooms this
        node's users are in, and pass C{failure} on.
        """
        self._syncSubscriptions()
        return failure

    def _syncSubscriptions(self) -> None:
        """
        Listen to the channels of the rooms this node's users are in, and
        only those.
        """
        wanted = {room.key for room in self._rooms if room.members}
        for key in wanted - self._subscribed:
            self.redis.subscribe(ROOM_CHANNEL.format(room=key))
        for key in self._subscribed - wanted:
            self.redis.unsubscribe(ROOM_CHANNEL.format(room=key))
        self._subscribed = wanted

    # Local delivery

    def _messageReceived(self, channel: str, message: str) -> None:
        self.onInput()
        if channel == self._nodeChannel:
            for operation in json.loads(message):
                getattr(self, "_op_" + operation[0])(*operation[1:])
            return
        if channel == QUIT_CHANNEL:
            key, origin, name, keys, reason = message.split("\n", 4)
            if key in self._sessions:
                # This node still holds the session: another node took this
                # one for dead, and the next heartbeat puts it back.
                return
            rooms = [room for key in keys.split() if (room := self._rooms.get(key))]
            if rooms:
                self._rooms.announceOnce(rooms, UserLeft(name, origin, reason))
            return
        room = self._rooms.get(channel[len("tc:room:") :])
        if room is None:
            return
        if message[:1] in ("s", "n"):
            self._linesReceived(room, message.split("\n"))
            return
        kind, key, origin, rest = message.split("\n", 3)
        own = self._sessions.get(key)
        if kind in _BACK:
            # A user back after its node was taken for dead: told as a join
            # everywhere but on its own node, whose users never saw it leave.
            if own is not None:
                return
            kind = _BACK[kind]
        # The user the message is about gets no copy of it.
        exclude = own.client if own is not None else None
        if kind == "J":
            room.audience.announce(UserJoined(rest, origin), exclude)
        elif kind == "j":
            room.audience.announce(RoomJoined(rest, room.name, origin), exclude)
        elif kind == "l":
            name, reason = rest.split("\n", 1)
            room.audience.announce(RoomLeft(name, room.name, origin, reason), exclude)

    def _linesReceived(self, room: Room, fields: list[str]) -> None:
        """
        Deliver the lines of one message on C{room}'s channel: six fields
        each (kind, key, origin, name, id, text; no field holds an LF, since
        the session core cleans control characters out of every text).
        """
        sessions = self._sessions
        lines: list[tuple[ChatLine, IChatClient | None]] = []
        for i in range(0, len(fields) - 5, 6):
            kind, key, origin, name, msgid, text = fields[i : i + 6]
            line = ChatLine(
                room.name, name, text, _time(msgid), msgid, origin, kind == "n"
            )
            # The sender gets no copy of its line, unless it asked for one.
            own = sessions.get(key)
            lines.append(
                (line, None if own is None or own.client.echoes else own.client)
            )
        room.lines += len(lines)
        room.audience.sendAll(lines)

    def _op_ev(self, key: str, encoded: list[Any]) -> None:
        session = self._sessions.get(key)
        if session is not None:
            session.client.notify(decode(encoded))

    def _op_pair(self, key: str, partner: str) -> None:
        session = self._sessions.get(key)
        if session is not None:
            self._partners[key] = partner
            if self._hidden(session):
                self._rooms.hide(session)

    def _op_unpair(self, key: str) -> None:
        session = self._sessions.get(key)
        if session is None:
            return
        hidden = self._hidden(session)
        self._partners.pop(key, None)
        if hidden:
            missed = self._rooms.show(session)
            if missed is not None:
                session.client.notify(missed)

    def _op_supersede(self, key: str, sid: str) -> None:
        self._supersede(key, sid)

    def _supersede(self, key: str, sid: str) -> None:
        if self._sids.get(key) != sid:
            return
        session = self._sessions[key]
        self._forget(session)
        session.client.supersede()

    def _forget(self, session: Session) -> bool:
        if self._sessions.get(session.key) is not session:
            return False
        del self._sessions[session.key]
        del self._sids[session.key]
        self._partners.pop(session.key, None)
        self._rooms.exitAll(session)
        self._syncSubscriptions()
        return True

    # Sessions

    def attach(self, session: Session) -> "Deferred[bool]":
        sid = uuid.uuid4().hex

        def attached(reply: list[Any]) -> bool:
            takeover, oldNode, oldSid, partner, rooms, current = reply
            if partner:
                self._partners[session.key] = partner
            old = self._sessions.get(session.key)
            if takeover and oldNode == self.node and old is not None:
                if self._sids.get(session.key) == oldSid:
                    self._rooms.replace(old, session)
                    if self._hidden(old) != self._hidden(session):
                        self._rooms.show(session)
                        if self._hidden(session):
                            self._rooms.hide(session)
                    del self._sessions[session.key]
                    old.client.supersede()
            else:
                hidden = self._hidden(session)
                for room, display in _pairs(rooms).items():
                    self._rooms.enter(session, display, hidden)
                    if room == current:
                        session.current = room
                if hidden:
                    self._rooms.hide(session)
            self._sessions[session.key] = session
            self._sids[session.key] = sid
            self._syncSubscriptions()
            return bool(takeover)

        def attach(_: None) -> "Deferred[Any]":
            return self.redis.script(
                _ATTACH, session.key, self.node, sid, session.name, session.origin
            )

        d: Deferred[Any] = self._subscribeFirst(GENERAL_KEY).addCallback(attach)
        result: Deferred[bool] = d.addCallback(attached)
        return result.addErrback(self._stopListening)

    def detach(
        self, session: Session, reason: str = ""
    ) -> "Deferred[Departure | None]":
        sid = self._sids.get(session.key, "")
        rooms = [room for key in session.rooms if (room := self._rooms.get(key))]
        if not self._forget(session):
            return succeed(None)

        def detached(reply: Any) -> Departure | None:
            if not reply:
                return None
            return Departure(reply[1] or None)

        def unreachable(failure: Failure) -> Departure:
            # Redis is away: the session is gone from this node, and the
            # resync when Redis is back takes it offline there too.
            failure.trap(HubUnavailableError)
            left = UserLeft(session.name, session.origin, reason)
            self._rooms.announceOnce(rooms, left)
            return Departure(None)

        d = self.redis.script(_DETACH, session.key, sid, reason)
        return d.addCallbacks(detached, unreachable)

    # Lines

    def sayInRoom(
        self, session: Session, room: str, text: str, notice: bool = False
    ) -> str | None:
        target = self._rooms.get(room)
        if target is None or room not in session.rooms:
            return None
        if self.redis.available:
            self._lines.add(_HeldLine(room, session, text, notice))
        else:
            self._sayHere(target, session, text, notice)
        return target.name

    def _sayHere(self, target: Room, session: Session, text: str, notice: bool) -> None:
        """
        Redis is away: the users of this node still hear each other.
        """
        now, msgid = self._ids.next()
        target.lines += 1
        origin = session.origin
        line = ChatLine(target.name, session.name, text, now, msgid, origin, notice)
        client = session.client
        target.audience.send(line, None if client.echoes else client)

    def _sendLines(self, lines: list["_HeldLine"]) -> None:
        """
        Send lines said on this node to Redis as one script call, which
        keeps each in its room's history and publishes each room's lines as
        one message; if Redis went away while they were held, deliver them
        here only.
        """
        if not self.redis.available:
            for held in lines:
                target = self._rooms.get(held.room)
                if target is not None:
                    self._sayHere(target, held.session, held.text, held.notice)
            return
        arguments: list[str] = []
        for room, session, text, notice in lines:
            kind = "n" if notice else "s"
            arguments += (room, session.key, session.name, text, session.origin, kind)
        d = self.redis.script(_SAY, self._history, *arguments)

        def failed(failure: Failure) -> None:
            for client in dict.fromkeys(held.session.client for held in lines):
                client.failed(failure)

        d.addErrback(failed)

    def sayToPartner(self, session: Session, text: str) -> bool:
        partner = self._partners.get(session.key)
        if partner is None:
            return False
        line = json.dumps(encode(PrivateLine(session.name, text, session.origin)))
        d = self.redis.script(_NOTIFY, partner, line)
        d.addErrback(session.client.failed)
        return True

    def recentLines(
        self, room: str, count: int
    ) -> "Deferred[list[HistoryEntry]] | None":
        return self.queryHistory(room, HistoryQuery(Around.LATEST, count))

    def queryHistory(
        self, room: str, query: HistoryQuery
    ) -> "Deferred[list[HistoryEntry]] | None":
        if not self._history:
            return None
        first, second, limit = query.first, query.second, query.limit
        if query.around is Around.LATEST:
            return self._range(room, True, "+", _after(first) if first else "-", limit)
        assert first is not None
        if query.around is Around.BEFORE:
            return self._range(room, True, _before(first), "-", limit)
        if query.around is Around.AFTER:
            return self._range(room, False, _after(first), "+", limit)
        if query.around is Around.AROUND:
            earlier = self._range(room, True, _before(first), "-", limit // 2)

            def later(entries: list[HistoryEntry]) -> "Deferred[list[HistoryEntry]]":
                since = _after(first, inclusive=True)
                rest = self._range(room, False, since, "+", limit - len(entries))
                return rest.addCallback(lambda more: entries + more)

            return earlier.addCallback(later)
        assert second is not None
        if first.ms <= second.ms:
            return self._range(room, False, _after(first), _before(second), limit)
        return self._range(room, True, _before(first), _after(second), limit)

    def _range(
        self, room: str, newest: bool, start: str, end: str, count: int
    ) -> "Deferred[list[HistoryEntry]]":
        """
        Up to C{count} lines of C{room}'s stream from C{start} to C{end}
        (backwards from the newest if C{newest}), oldest first.
        """
        if count <= 0:
            return succeed([])

        def parsed(records: list[Any]) -> list[HistoryEntry]:
            entries = [_entry(record) for record in records]
            return entries[::-1] if newest else entries

        command = "XREVRANGE" if newest else "XRANGE"
        d = self.redis.script(_HISTORY, room, command, start, end, count)
        return d.addCallback(parsed)

    # Rooms

    def joinRoom(self, session: Session, name: str) -> "Deferred[Joined]":
        key = foldName(name)

        def joined(reply: list[Any]) -> Joined:
            outcome, display, count = _JOIN_OUTCOMES[reply[0]], reply[1], reply[2]
            if self._sessions.get(session.key) is not session:
                self._syncSubscriptions()
                return Joined(outcome, display, int(count))
            if outcome is Join.JOINED:
                hidden = self._hidden(session)
                self._rooms.enter(session, display, hidden)
            if outcome in (Join.JOINED, Join.ALREADY_IN):
                self._rooms.setCurrent(session, key)
                if self._hidden(session):
                    self._rooms.hide(session)
            # Stop listening again if the user did not enter after all.
            self._syncSubscriptions()
            return Joined(outcome, display, int(count))

        def join(_: None) -> "Deferred[Any]":
            return self.redis.script(
                _JOIN,
                session.key,
                key,
                name,
                session.name,
                self.maxRoomsPerUser,
                self.maxRooms,
                session.origin,
            )

        d: Deferred[Any] = self._subscribeFirst(key).addCallback(join)
        result: Deferred[Joined] = d.addCallback(joined)
        return result.addErrback(self._stopListening)

    def leaveRoom(
        self, session: Session, room: str, reason: str = ""
    ) -> "Deferred[Left | None]":
        if room not in session.rooms:
            return succeed(None)
        wasCurrent = session.current == room
        fallback = wasCurrent and GENERAL_KEY in session.rooms and room != GENERAL_KEY

        def left(reply: Any) -> Left | None:
            if not reply:
                return None
            display, generalCount = reply
            if self._sessions.get(session.key) is session:
                self._rooms.exit(session, room)
                self._syncSubscriptions()
                if fallback:
                    self._rooms.setCurrent(session, GENERAL_KEY)
                    if self._hidden(session):
                        self._rooms.hide(session)
                elif wasCurrent:
                    session.current = GENERAL_KEY
            if fallback:
                return Left(display, GENERAL, int(generalCount))
            return Left(display)

        d = self.redis.script(
            _LEAVE_ROOM,
            session.key,
            room,
            session.name,
            GENERAL_KEY if fallback else "",
            session.origin,
            reason,
        )
        return d.addCallback(left)

    def rooms(self) -> "Deferred[list[RoomInfo]]":
        def listed(flat: list[Any]) -> list[RoomInfo]:
            found = {
                flat[i]: RoomInfo(flat[i + 1], int(flat[i + 2]))
                for i in range(0, len(flat), 3)
            }
            return [found[key] for key in sorted(found)]

        return self.redis.script(_ROOMS).addCallback(listed)

    def roomsOf(self, name: str) -> "Deferred[list[str]]":
        def listed(rooms: dict[str, str]) -> list[str]:
            return [rooms[key] for key in sorted(rooms)]

        d = self.redis.call("hgetall", f"tc:in:{foldName(name)}")
        return d.addCallback(listed)

    def roomMembers(
        self, room: str
    ) -> "Deferred[tuple[str, list[tuple[str, str]]] | None]":
        def listed(reply: Any) -> tuple[str, list[tuple[str, str]]] | None:
            if not reply:
                return None
            name, flat = reply
            members = sorted(_pairs(flat).items(), key=lambda m: foldName(m[0]))
            return str(name), members

        return self.redis.script(_MEMBERS, room).addCallback(listed)

    def localRoom(self, room: str) -> Room | None:
        """
        This node's mirror of the room C{room}, if one of its users is in it.
        """
        return self._rooms.get(room)

    # Who is online

    def online(self) -> "Deferred[list[UserStatus]]":
        def parsed(reply: list[list[str]]) -> list[UserStatus]:
            records, partnerList = reply
            online = {
                key: json.loads(record) for key, record in _pairs(records).items()
            }
            partners = _pairs(partnerList)
            return [
                UserStatus(
                    online[key]["name"],
                    online[partners[key]]["name"]
                    if partners.get(key) in online
                    else None,
                    online[key].get("o", "line"),
                )
                for key in sorted(online)
            ]

        return self.redis.script(_ONLINE).addCallback(parsed)

    def lookup(self, name: str) -> "Deferred[UserStatus | None]":
        key = foldName(name)
        return self.online().addCallback(
            lambda users: next((u for u in users if foldName(u.name) == key), None)
        )

    # Private chats

    def requestPrivateChat(
        self, session: Session, target: str
    ) -> "Deferred[RequestResult]":
        requestId = uuid.uuid4().hex

        def requested(reply: list[str]) -> RequestResult:
            outcome = _REQUEST_OUTCOMES[reply[0]]
            if outcome is Request.SENT:
                self._clock.callLater(
                    REQUEST_TIMEOUT, self._expire, session.key, requestId
                )
            return RequestResult(outcome, reply[1] or target)

        d = self.redis.script(_REQUEST, session.key, foldName(target), requestId)
        return d.addCallback(requested)

    def _expire(self, key: str, requestId: str) -> None:
        self.redis.script(_EXPIRE, key, requestId).addErrback(self._ignoreUnavailable)

    def answerPrivateChat(
        self, session: Session, accept: bool
    ) -> "Deferred[str | None]":
        def answered(reply: Any) -> str | None:
            if not reply:
                return None
            requesterName, requesterKey = reply
            if accept and self._sessions.get(session.key) is session:
                self._op_pair(session.key, requesterKey)
            return str(requesterName)

        d = self.redis.script(_ANSWER, session.key, "1" if accept else "0")
        return d.addCallback(answered)

    def leavePrivateChat(self, session: Session) -> "Deferred[PrivateEnded | None]":
        def left(partner: Any) -> PrivateEnded | None:
            if not partner:
                return None
            missed = None
            if self._sessions.get(session.key) is session:
                hidden = self._hidden(session)
                self._partners.pop(session.key, None)
                if hidden:
                    missed = self._rooms.show(session)
            return PrivateEnded(str(partner), missed)

        d = self.redis.script(_LEAVE_PRIVATE_CHAT, session.key)
        return d.addCallback(left)
