"""
The hub of several nodes that form one chat over Redis.

Shared state lives in Redis and changes only inside Lua scripts, so each
change is atomic across nodes: who is online where (C{tc:online}), who is
paired with whom (C{tc:partner}), pending private-chat requests
(C{tc:request}), the users of each node, and a liveness key per node.

Lines travel by pub/sub: a group line (C{s}), and a user's arrival (C{j})
or departure (C{l}), is published once on C{tc:group} as LF-separated
fields (the kind, the user's key, then the name and the text), and every
node delivers it to its own sessions but that user's; a notification for
one user (L{twisted_chat.core.events.encode}), and the control operations
of private chats, go as JSON to the channel of the node holding that user's
session (C{tc:to:<node>}).  Each node keeps a mirror of which of its own
sessions are in the group, so a group line costs it one fan-out loop.
"""

import json
import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..core.events import (
    ChatLine,
    PrivateLine,
    Request,
    RequestResult,
    UserJoined,
    UserLeft,
    UserStatus,
    decode,
    encode,
)
from ..core.hub import Audience, Departure, HubUnavailableError, IHub, Session
from ..core.text import foldName
from .connection import MAX_RECONNECT_DELAY, RedisAddress, RedisConnection

GROUP_CHANNEL = "tc:group"
NODE_CHANNEL = "tc:to:{node}"
REQUEST_TIMEOUT = 60.0

# Helpers shared by the scripts below: send operations to the node holding a
# user, tell a user of an event, and take a user offline.
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
local function leave(k, sid)
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
  redis.call('HDEL', 'tc:online', k)
  redis.call('SREM', 'tc:node:' .. r.n, k)
  redis.call('PUBLISH', 'tc:group', 'l\\n' .. k .. '\\n' .. r.name)
  return {r.name, partnerName}
end
local function reap(node)
  for _, k in ipairs(redis.call('SMEMBERS', 'tc:node:' .. node)) do
    leave(k, '')
  end
  redis.call('DEL', 'tc:node:' .. node)
  redis.call('SREM', 'tc:nodes', node)
end
"""

# ARGV: key, node, sid, name.  Returns {takeover, old node, old sid,
# partner key}.
_ATTACH = (
    _PRELUDE
    + """
local k, node, sid = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', 'tc:online', k)
redis.call('HSET', 'tc:online', k, cjson.encode({n = node, s = sid, name = ARGV[4]}))
redis.call('SADD', 'tc:node:' .. node, k)
local partner = redis.call('HGET', 'tc:partner', k) or ''
if old then
  local o = cjson.decode(old)
  if o.n ~= node then
    redis.call('SREM', 'tc:node:' .. o.n, k)
    redis.call('PUBLISH', 'tc:to:' .. o.n, cjson.encode({{'supersede', k, o.s}}))
  end
  return {1, o.n, o.s, partner}
end
redis.call('PUBLISH', 'tc:group', 'j\\n' .. k .. '\\n' .. ARGV[4])
return {0, '', '', partner}
"""
)

# ARGV: key, sid ('' for any).  Returns {name, partner name} or false if the
# session was not the one online.
_DETACH = _PRELUDE + "return leave(ARGV[1], ARGV[2])"

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
# liveness and, if asked to, takes the users of dead nodes offline.
_HEARTBEAT = (
    _PRELUDE
    + """
local node = ARGV[1]
redis.call('SET', 'tc:alive:' .. node, '1', 'PX', ARGV[2])
redis.call('SADD', 'tc:nodes', node)
if ARGV[3] ~= '1' then return 0 end
for _, other in ipairs(redis.call('SMEMBERS', 'tc:nodes')) do
  if redis.call('EXISTS', 'tc:alive:' .. other) == 0 then reap(other) end
end
return 0
"""
)

# ARGV: node, sessions (JSON {key: [sid, name]}).  After Redis came back:
# drop the users who left meanwhile, announce the others again, and return
# {key, partner key} pairs and superseded keys.
_RESYNC = (
    _PRELUDE
    + """
local node = ARGV[1]
local current = cjson.decode(ARGV[2])
for _, k in ipairs(redis.call('SMEMBERS', 'tc:node:' .. node)) do
  if current[k] == nil then leave(k, '') end
end
local partners, superseded = {}, {}
for k, v in pairs(current) do
  local rec = redis.call('HGET', 'tc:online', k)
  local r = rec and cjson.decode(rec)
  if r and (r.n ~= node or r.s ~= v[1]) then
    table.insert(superseded, k)
  else
    redis.call('HSET', 'tc:online', k, cjson.encode({n = node, s = v[1], name = v[2]}))
    redis.call('SADD', 'tc:node:' .. node, k)
    local p = redis.call('HGET', 'tc:partner', k)
    if p then table.insert(partners, k); table.insert(partners, p) end
  end
end
redis.call('SADD', 'tc:nodes', node)
return {partners, superseded}
"""
)

_REQUEST_OUTCOMES = {outcome.name: outcome for outcome in Request}


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
    ) -> None:
        self._clock = reactor
        self.ttl = ttl
        self.node = uuid.uuid4().hex
        self._nodeChannel = NODE_CHANNEL.format(node=self.node)
        self.redis = connection(
            reactor,
            address,
            channels=[GROUP_CHANNEL, self._nodeChannel],
            onMessage=self._messageReceived,
            onAvailable=self._resync,
        )
        self._sessions: dict[str, Session] = {}
        self._sids: dict[str, str] = {}
        self._group = Audience()
        self._partners: dict[str, str] = {}
        self._reapAfter = 0.0
        self._connectedBefore = False
        self._liveness = LoopingCall(self._beat)
        self._liveness.clock = reactor

    @property
    def sessionCount(self) -> int:
        return len(self._sessions)

    def start(self) -> None:
        self.redis.start()
        self._liveness.start(self.ttl / 3, now=False)

    def stop(self) -> "Deferred[None]":
        if self._liveness.running:
            self._liveness.stop()
        d = self.redis.call("delete", f"tc:alive:{self.node}")
        d.addCallback(lambda _: self.redis.call("srem", "tc:nodes", self.node))
        d.addErrback(lambda failure: failure.trap(HubUnavailableError))
        return d.addBoth(lambda _: self.redis.stop()).addCallback(lambda _: None)

    def _beat(self) -> None:
        liveness = int(self.ttl * 2000 / 3)
        reap = "1" if self._clock.seconds() >= self._reapAfter else "0"
        self.redis.script(_HEARTBEAT, self.node, liveness, reap).addErrback(
            self._ignoreUnavailable
        )

    def _ignoreUnavailable(self, failure: Failure) -> None:
        failure.trap(HubUnavailableError)

    def _resync(self) -> None:
        """
        Redis is (back) up: announce this node's sessions again, drop those
        that ended meanwhile, and reload their private-chat partners.
        """
        if self._connectedBefore:
            # Every node lost Redis too, and their liveness keys may have
            # expired meanwhile: give them time to come back before reaping.
            grace = self.ttl + 2 * MAX_RECONNECT_DELAY
            self._reapAfter = self._clock.seconds() + grace
        self._connectedBefore = True
        current = {
            key: [self._sids[key], session.name]
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
        self._group.clear()
        for key, session in self._sessions.items():
            if key not in self._partners:
                self._group.add(session)
        for key in superseded:
            self._supersede(key, self._sids.get(key, ""))

    # Local delivery

    def _messageReceived(self, channel: str, message: str) -> None:
        if channel == GROUP_CHANNEL:
            kind, key, rest = message.split("\n", 2)
            # The user the message is about gets no copy of it.
            own = self._sessions.get(key)
            exclude = own.client if own is not None else None
            if kind == "s":
                name, text = rest.split("\n", 1)
                self._group.send(ChatLine(name, text), exclude)
            elif kind == "j":
                self._group.announce(UserJoined(rest), exclude)
            elif kind == "l":
                self._group.announce(UserLeft(rest), exclude)
            return
        for operation in json.loads(message):
            getattr(self, "_op_" + operation[0])(*operation[1:])

    def _op_ev(self, key: str, encoded: list[Any]) -> None:
        session = self._sessions.get(key)
        if session is not None:
            session.client.notify(decode(encoded))

    def _op_pair(self, key: str, partner: str) -> None:
        if key in self._sessions:
            self._partners[key] = partner
            self._group.discard(key)

    def _op_unpair(self, key: str) -> None:
        session = self._sessions.get(key)
        if session is not None:
            self._partners.pop(key, None)
            self._group.add(session)

    def _op_supersede(self, key: str, sid: str) -> None:
        self._supersede(key, sid)

    def _supersede(self, key: str, sid: str) -> None:
        if self._sids.get(key) != sid:
            return
        session = self._sessions.pop(key)
        del self._sids[key]
        self._group.discard(key)
        self._partners.pop(key, None)
        session.client.supersede()

    def _forget(self, session: Session) -> bool:
        if self._sessions.get(session.key) is not session:
            return False
        del self._sessions[session.key]
        del self._sids[session.key]
        self._group.discard(session.key)
        self._partners.pop(session.key, None)
        return True

    # IHub

    def attach(self, session: Session) -> "Deferred[bool]":
        sid = uuid.uuid4().hex

        def attached(reply: list[Any]) -> bool:
            takeover, oldNode, oldSid, partner = reply
            if takeover and oldNode == self.node:
                self._supersede(session.key, oldSid)
            self._sessions[session.key] = session
            self._sids[session.key] = sid
            if partner:
                self._partners[session.key] = partner
            else:
                self._group.add(session)
            return bool(takeover)

        d = self.redis.script(_ATTACH, session.key, self.node, sid, session.name)
        return d.addCallback(attached)

    def detach(self, session: Session) -> "Deferred[Departure | None]":
        sid = self._sids.get(session.key, "")
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
            self._group.announce(UserLeft(session.name))
            return Departure(None)

        d = self.redis.script(_DETACH, session.key, sid)
        return d.addCallbacks(detached, unreachable)

    def say(self, session: Session, text: str) -> bool:
        partner = self._partners.get(session.key)
        if partner is not None:
            line = json.dumps(encode(PrivateLine(session.name, text)))
            d = self.redis.script(_NOTIFY, partner, line)
            d.addErrback(session.client.failed)
            return False
        if not self.redis.available:
            self._group.send(ChatLine(session.name, text), session.client)
            return True
        message = f"s\n{session.key}\n{session.name}\n{text}"
        self.redis.call("publish", GROUP_CHANNEL, message).addErrback(
            session.client.failed
        )
        return True

    def online(self) -> "Deferred[list[UserStatus]]":
        def parsed(reply: list[list[str]]) -> list[UserStatus]:
            records, partnerList = reply
            names = {
                records[i]: json.loads(records[i + 1])["name"]
                for i in range(0, len(records), 2)
            }
            partners = dict(zip(partnerList[::2], partnerList[1::2], strict=True))
            return [
                UserStatus(names[key], names.get(partners.get(key, "")))
                for key in sorted(names)
            ]

        return self.redis.script(_ONLINE).addCallback(parsed)

    def lookup(self, name: str) -> "Deferred[UserStatus | None]":
        key = foldName(name)
        return self.online().addCallback(
            lambda users: next((u for u in users if foldName(u.name) == key), None)
        )

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

    def leavePrivateChat(self, session: Session) -> "Deferred[str | None]":
        def left(partner: Any) -> str | None:
            if not partner:
                return None
            self._op_unpair(session.key)
            return str(partner)

        d = self.redis.script(_LEAVE_PRIVATE_CHAT, session.key)
        return d.addCallback(left)
