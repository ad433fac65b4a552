"""
Integration tests: the plugin's service runs in the test process on
127.0.0.1 ephemeral ports, and real TCP (and TLS, and UDP) clients talk to it.
"""

import datetime
import json
import re
import socket
from pathlib import Path

import pytest
import pytest_twisted
from chatclient import ChatClient, Server, askPrivate, goPrivate, options, running
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    connectProtocol,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall, deferLater

from twisted_chat import tap
from twisted_chat.core import localhub
from twisted_chat.frontends.line import messages

WELCOME = "Welcome to twisted-chat. An unknown name creates an account."
TURKISH = "Merhaba dünya, şöyle çığlık ğ İ ı"  # noqa: RUF001 (Turkish letters)
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (.+)$")


def sleep(seconds: float):
    return deferLater(reactor, seconds, lambda: None)


async def barrier(client: ChatClient, online: str) -> None:
    """
    Ask C{client}'s @WHO and require it to be the very next line, proving
    that nothing else reached C{client} before it.
    """
    client.send("@WHO")
    await client.expect(f"Online users: {online}")


def auditEvents(server: Server) -> list[str]:
    """
    The events of the audit log, checking each line's timestamp format.
    """
    events = []
    for line in server.auditLines():
        match = TIMESTAMP.match(line)
        assert match, f"badly formatted audit line: {line!r}"
        events.append(match.group(1))
    return events


# Accounts and login


@pytest_twisted.ensureDeferred
async def test_register_then_login(tmp_path: Path) -> None:
    """
    When an unknown name connects, the server registers it, and the same name and
    password log in again later.
    """
    async with running(tmp_path) as server:
        alice = await server.connect()
        await alice.expect(WELCOME, "Username: ")
        alice.send("alice")
        await alice.expect("Password: ")
        alice.send("secret")
        await alice.expect("Login success!")
        alice.send("LOGOUT")
        await alice.expect("Goodbye, alice!")
        await alice.expectClosed()

        again = await server.connect()
        await again.login("alice", "secret")
        await barrier(again, "alice")
    events = auditEvents(server)
    assert events.count("User with alice successfully registered.") == 1
    assert events.count("User alice logged in.") == 2


@pytest_twisted.ensureDeferred
async def test_wrong_password_and_invalid_name(tmp_path: Path) -> None:
    """
    When a password is wrong or a name invalid, the server says so, prompts again, and
    closes the connection at the fifth failed login.
    """
    async with running(tmp_path) as server:
        alice = await server.user("alice")
        alice.send("LOGOUT")
        await alice.expect("Goodbye, alice!")
        await alice.expectClosed()

        client = await server.connect()
        await client.expect(WELCOME, "Username: ")
        client.send("not a valid name!")
        await client.expect(
            "Invalid username: use 1-32 letters, digits, _ or -.", "Username: "
        )
        client.send("ALICE", "wrong")
        await client.expect("Password: ", "Wrong password.", "Username: ")
        client.send("alice", "secret")
        await client.expect("Password: ", "Login success!")
        await barrier(client, "alice")

        stranger = await server.connect()
        await stranger.expect(WELCOME, "Username: ")
        for attempt in range(4):
            stranger.send("alice", f"guess{attempt}")
            await stranger.expect("Password: ", "Wrong password.", "Username: ")
        stranger.send("alice", "guess4")
        await stranger.expect("Password: ", "Too many failed logins.")
        await stranger.expectClosed()
        # The failed logins did not disturb the logged-in alice.
        await barrier(client, "alice")


@pytest_twisted.ensureDeferred
async def test_users_json_after_registration(tmp_path: Path) -> None:
    """
    When users register, the server writes users.json with Argon2id hashes in the
    documented format and no plaintext password.
    """
    async with running(tmp_path) as server:
        await server.logins("Hakan")
        zeynep = await server.user("zeynep", "pa55word-zeynep")
        # Case folding: hakan is Hakan's account, and the first spelling stays.
        again = await server.connect()
        await again.expect(WELCOME, "Username: ")
        again.send("hakan", "wrong")
        await again.expect("Password: ", "Wrong password.", "Username: ")
        await barrier(zeynep, "Hakan, zeynep")
        document = json.loads(server.users.read_text("utf-8"))
    assert document["version"] == 1
    assert [entry["name"] for entry in document["users"]] == ["Hakan", "zeynep"]
    for entry in document["users"]:
        assert set(entry) == {"name", "hash"}
        assert entry["hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    raw = server.users.read_text("utf-8")
    assert "secret" not in raw
    assert "pa55word-zeynep" not in raw
    assert not list(tmp_path.glob(".users-*"))


@pytest.mark.parametrize(
    "content, problem",
    [
        (b'{"version": 1, "users": [', "is not valid JSON"),
        (b'["alice", "secret"]', "is not an account file"),
    ],
)
def test_corrupt_users_json_stops_the_server(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """
    When users.json is not valid JSON or not a known format, the server refuses to start
    with a clear message and leaves the file untouched.
    """
    users = tmp_path / "users.json"
    users.write_bytes(content)
    with pytest.raises(SystemExit) as caught:
        tap.makeService(options(tmp_path), reactor)
    message = str(caught.value)
    assert str(users) in message
    assert problem in message
    assert "left untouched" in message
    assert users.read_bytes() == content
    assert not list(tmp_path.glob(".users-*"))


# Group chat


@pytest_twisted.ensureDeferred
async def test_group_fan_out_without_echo(tmp_path: Path) -> None:
    """
    When a user talks to the group, the server relays the line to every other user and
    not back to the sender.
    """
    async with running(tmp_path) as server:
        alice, bob, carol, dave = await server.logins("alice", "bob", "carol", "dave")
        alice.send("hello everyone")
        for other in (bob, carol, dave):
            await other.expect("alice > hello everyone")
        dave.send("hi alice")
        for other in (alice, bob, carol):
            await other.expect("dave > hi alice")
        for client in (alice, bob, carol, dave):
            await barrier(client, "alice, bob, carol, dave")
        carol.send("LOGOUT")
        await carol.expect("Goodbye, carol!")
        await carol.expectClosed()
        for other in (alice, bob, dave):
            await other.expect("* carol left the chat.")
    events = auditEvents(server)
    assert "Received message from alice: hello everyone" in events
    assert "Received message from dave: hi alice" in events
    assert "carol logged out." in events


@pytest_twisted.ensureDeferred
async def test_commands_are_case_insensitive_and_unknown_ones_explained(
    tmp_path: Path,
) -> None:
    """
    When commands are typed in any case or are unknown, the server runs or explains
    them, and ignores empty lines.
    """
    async with running(tmp_path) as server:
        (alice,) = await server.logins("alice")
        alice.send("", "   ", "\x07", "@who")
        await alice.expect("Online users: alice")
        alice.send("@FOO")
        await alice.expect("Unknown command @FOO; type @HELP for the list.")
        alice.send("@help")
        await alice.expect("Commands (case does not matter):")
        lines = [await alice.next() for _ in range(len(messages.HELP) - 1)]
        assert any(line.strip().startswith("@HEARTBEAT") for line in lines)
        assert lines[-1].strip().startswith("LOGOUT")
        await barrier(alice, "alice")


# Private chat


@pytest_twisted.ensureDeferred
async def test_private_chat_flow(tmp_path: Path) -> None:
    """
    When a private chat is requested and accepted, the server relays the pair's lines
    only to each other, keeps group lines from them, and ends it on EXIT PM.
    """
    async with running(tmp_path) as server:
        alice, bob, carol = await server.logins("alice", "bob", "carol")
        await goPrivate(alice, bob, "alice", "bob", asked="Bob")

        alice.send("just between us")
        await bob.expect("alice > just between us")
        bob.send("agreed")
        await alice.expect("bob > agreed")
        await barrier(carol, "alice (PM with bob), bob (PM with alice), carol")

        carol.send("anyone there?")
        dave = await server.user("dave")
        await carol.expect("* dave joined the chat.")
        dave.send("hi carol")
        await carol.expect("dave > hi carol")
        await barrier(carol, "alice (PM with bob), bob (PM with alice), carol, dave")
        await barrier(alice, "alice (PM with bob), bob (PM with alice), carol, dave")
        await barrier(bob, "alice (PM with bob), bob (PM with alice), carol, dave")

        bob.send("exit pm")
        missed = "You missed 2 lines in #general; type @HISTORY to see them."
        await bob.expect("You left the private chat with alice.", missed)
        await alice.expect("Your partner bob left pm!", missed)
        bob.send("EXIT PM")
        await bob.expect("You are not in a private chat.")
        carol.send("welcome back")
        for client in (alice, bob, dave):
            await client.expect("carol > welcome back")
        alice.send("back in the group")
        for client in (bob, carol, dave):
            await client.expect("alice > back in the group")
        await barrier(alice, "alice, bob, carol, dave")
    events = auditEvents(server)
    assert "User: alice requested private chat with user: bob" in events
    assert "The PM start between alice and bob" in events
    assert "PM between users bob and alice closed." in events
    assert not [e for e in events if "just between us" in e or "agreed" in e]


@pytest_twisted.ensureDeferred
async def test_private_chat_rejected(tmp_path: Path) -> None:
    """
    When the asked user answers N or @REJECT, the server tells both and leaves them in
    the group, where a later Y is plain text.
    """
    async with running(tmp_path) as server:
        alice, bob = await server.logins("alice", "bob")
        await askPrivate(alice, bob, "alice", "bob")
        bob.send("N")
        await bob.expect("Request rejected.")
        await alice.expect("bob rejected your private chat request.")

        await askPrivate(bob, alice, "bob", "alice")
        alice.send("@reject")
        await alice.expect("Request rejected.")
        await bob.expect("alice rejected your private chat request.")

        bob.send("Y")
        await alice.expect("bob > Y")
        bob.send("@ACCEPT")
        await bob.expect("You have no private chat request to answer.")
        await barrier(alice, "alice, bob")
        await barrier(bob, "alice, bob")


@pytest_twisted.ensureDeferred
async def test_private_chat_refusals(tmp_path: Path) -> None:
    """
    When a private chat cannot be requested (unknown, offline, self, busy, pending), the
    server answers the requester with the matching line.
    """
    async with running(tmp_path) as server:
        (olga,) = await server.logins("olga")
        olga.send("LOGOUT")
        await olga.expect("Goodbye, olga!")
        await olga.expectClosed()
        alice, bob, carol, dave, erin = await server.logins(
            "alice", "bob", "carol", "dave", "erin"
        )
        alice.send("@PM nobody")
        await alice.expect("User nobody does not exist.")
        alice.send("@PM OLGA")
        await alice.expect("User olga is offline.")
        alice.send("@PM alice")
        await alice.expect("You cannot have a private chat with yourself.")

        await askPrivate(alice, bob, "alice", "bob")
        alice.send("@PM carol")
        await alice.expect("You already have a request pending to bob.")
        carol.send("@PM bob")
        await carol.expect("User bob already has a request pending.")
        bob.send("@ACCEPT")
        await bob.expect(
            "You are now in a private chat with alice. Type EXIT PM to leave."
        )
        await alice.expect(
            "You are now in a private chat with bob. Type EXIT PM to leave."
        )

        dave.send("@PM alice")
        await dave.expect("User alice is already in a private chat.")
        alice.send("@PM erin")
        await alice.expect(
            "You are already in a private chat with bob; type EXIT PM first."
        )
        for client in (carol, dave, erin):
            await barrier(
                client, "alice (PM with bob), bob (PM with alice), carol, dave, erin"
            )


@pytest_twisted.ensureDeferred
async def test_pending_request_cancelled_on_disconnect(tmp_path: Path) -> None:
    """
    When either side of a pending request disconnects, the server tells the other that
    the request was cancelled.
    """
    async with running(tmp_path) as server:
        alice, bob, carol = await server.logins("alice", "bob", "carol")
        await askPrivate(alice, bob, "alice", "bob")
        alice.close()
        await bob.expect(
            "The private chat request from alice was cancelled.",
            "* alice left the chat.",
        )
        await carol.expect("* alice left the chat.")

        await askPrivate(carol, bob, "carol", "bob")
        bob.transport.loseConnection()
        await carol.expect(
            "The private chat request to bob was cancelled.", "* bob left the chat."
        )
        # The request is gone with bob.
        carol.send("@PM bob")
        await carol.expect("User bob is offline.")
        await barrier(carol, "carol")
    events = auditEvents(server)
    assert "Lost connection from alice" in events
    assert "Lost connection from bob" in events


@pytest_twisted.ensureDeferred
async def test_partner_disconnects(tmp_path: Path) -> None:
    """
    When a private-chat partner's connection drops, the server tells the other one and
    returns them to the group.
    """
    async with running(tmp_path) as server:
        alice, bob, carol = await server.logins("alice", "bob", "carol")
        await goPrivate(alice, bob, "alice", "bob", "Y")
        bob.close()
        await alice.expect("Your partner bob left pm!", "* bob left the chat.")
        await carol.expect("* bob left the chat.")
        carol.send("still here")
        await alice.expect("carol > still here")
        await barrier(alice, "alice, carol")
    events = auditEvents(server)
    assert "PM between users bob and alice closed." in events
    assert "Lost connection from bob" in events


@pytest_twisted.ensureDeferred
async def test_private_chat_request_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    When a request stays unanswered for the request timeout, the server tells both users
    it expired.
    """
    monkeypatch.setattr(localhub, "REQUEST_TIMEOUT", 0.3)
    async with running(tmp_path) as server:
        alice, bob = await server.logins("alice", "bob")
        await askPrivate(alice, bob, "alice", "bob")
        await alice.expect("Your private chat request to bob expired.", timeout=3)
        await bob.expect("The private chat request from alice expired.", timeout=3)
        bob.send("y")
        await alice.expect("bob > y")
        await barrier(bob, "alice, bob")


# Lists, password, logout, takeover


@pytest_twisted.ensureDeferred
async def test_who_and_search(tmp_path: Path) -> None:
    """
    When @WHO and @SEARCH are used, the server lists online users and matching accounts
    sorted by folded name with their status.
    """
    async with running(tmp_path) as server:
        (zara,) = await server.logins("Zara")
        zara.send("LOGOUT")
        await zara.expect("Goodbye, Zara!")
        await zara.expectClosed()
        carol, alice, bob = await server.logins("carol", "Alice", "bob")
        await barrier(bob, "Alice, bob, carol")
        bob.send("@SEARCH A")
        await bob.expect(
            'Found 3 users matching "A":',
            "Alice (online)",
            "carol (online)",
            "Zara (offline)",
        )
        bob.send("@search nobody")
        await bob.expect('Found 0 users matching "nobody":')
        bob.send("@SEARCH")
        usage = await bob.next()
        assert usage.startswith("Usage: @SEARCH")
        await barrier(alice, "Alice, bob, carol")
        await barrier(carol, "Alice, bob, carol")


@pytest_twisted.ensureDeferred
async def test_password_change(tmp_path: Path) -> None:
    """
    When @PASSWORD is given the right old password, the server stores the new one; with
    a wrong one it refuses.
    """
    async with running(tmp_path) as server:
        (alice,) = await server.logins("alice")
        before = json.loads(server.users.read_text("utf-8"))["users"][0]["hash"]
        alice.send("@PASSWORD wrong newpass")
        await alice.expect("Wrong password.")
        alice.send("@password secret newpass")
        await alice.expect("Password changed.")
        after = json.loads(server.users.read_text("utf-8"))["users"][0]["hash"]
        assert after != before
        assert "newpass" not in server.users.read_text("utf-8")
        alice.send("LOGOUT")
        await alice.expect("Goodbye, alice!")
        await alice.expectClosed()

        again = await server.connect()
        await again.expect(WELCOME, "Username: ")
        again.send("alice", "secret")
        await again.expect("Password: ", "Wrong password.", "Username: ")
        again.send("alice", "newpass")
        await again.expect("Password: ", "Login success!")
    assert not [e for e in auditEvents(server) if "newpass" in e or "secret" in e]


@pytest_twisted.ensureDeferred
async def test_logout(tmp_path: Path) -> None:
    """
    When a user sends LOGOUT, the server says goodbye, closes the connection and tells
    the group.
    """
    async with running(tmp_path) as server:
        alice, bob = await server.logins("alice", "bob")
        alice.send("logout")
        await alice.expect("Goodbye, alice!")
        await alice.expectClosed()
        await bob.expect("* alice left the chat.")
        await barrier(bob, "bob")
    events = auditEvents(server)
    assert "alice logged out." in events
    assert "Lost connection from alice" not in events


@pytest_twisted.ensureDeferred
async def test_takeover_keeps_private_chat(tmp_path: Path) -> None:
    """
    When a user logs in from a second connection, the server closes the first with a
    notice, tells the new one the private chat goes on, and it does.
    """
    async with running(tmp_path) as server:
        alice, bob, carol = await server.logins("alice", "bob", "carol")
        await goPrivate(alice, bob, "alice", "bob", "Y")

        newAlice = await server.connect()
        await newAlice.login("Alice", "secret")
        await newAlice.expect(
            "You are now in a private chat with bob. Type EXIT PM to leave."
        )
        await alice.expect("You logged in from another connection.")
        await alice.expectClosed()

        newAlice.send("still me")
        await bob.expect("alice > still me")
        bob.send("hi again")
        await newAlice.expect("bob > hi again")
        # Nobody was told anything: no leave, join or partner-left line.
        online = "alice (PM with bob), bob (PM with alice), carol"
        for client in (newAlice, bob, carol):
            await barrier(client, online)
        events = auditEvents(server)
        assert "Lost connection from alice" not in events
        assert events.count("User alice logged in.") == 2


# Framing and text


@pytest_twisted.ensureDeferred
async def test_pipelined_input(tmp_path: Path) -> None:
    """
    When a client sends its name, password, a line and LOGOUT in one write before any
    prompt, the server handles all of them in order.
    """
    async with running(tmp_path) as server:
        (bob,) = await server.logins("bob")
        alice = await server.connect()
        alice.transport.write(b"alice\nsecret\nhello\nLOGOUT\n")
        await alice.expect(
            WELCOME,
            "Username: ",
            "Password: ",
            "Login success!",
            "Goodbye, alice!",
        )
        await alice.expectClosed()
        await bob.expect(
            "* alice joined the chat.", "alice > hello", "* alice left the chat."
        )
        names = [u["name"] for u in json.loads(server.users.read_text())["users"]]
        assert names == ["alice", "bob"]
    events = auditEvents(server)
    assert "User with alice successfully registered." in events
    assert "Received message from alice: hello" in events
    assert "alice logged out." in events


@pytest_twisted.ensureDeferred
async def test_crlf_and_turkish_text(tmp_path: Path) -> None:
    """
    When lines end in CRLF and hold Turkish UTF-8 text, the server relays and logs the
    text intact.
    """
    async with running(tmp_path) as server:
        (bob,) = await server.logins("bob")
        sukru = await server.connect()
        await sukru.expect(WELCOME, "Username: ")
        sukru.send("Şükrü", "gizli-şifre", end="\r\n")
        await sukru.expect("Password: ", "Login success!")
        await bob.expect("* Şükrü joined the chat.")
        sukru.send(TURKISH, end="\r\n")
        await bob.expect(f"Şükrü > {TURKISH}")
        # A multi-byte character split across two writes arrives whole.
        encoded = TURKISH.encode("utf-8")
        cut = encoded.index("ş".encode()) + 1
        sukru.transport.write(encoded[:cut])
        await sleep(0.05)
        sukru.transport.write(encoded[cut:] + b"\r\n")
        await bob.expect(f"Şükrü > {TURKISH}")
        bob.send("@PM şükrü\r\n", end="")
        await bob.expect("Private chat request sent to Şükrü.")
        await sukru.expect("The user bob wants to have a private chat with you (Y/N)?")
        await barrier(bob, "bob, Şükrü")
        stored = json.loads(server.users.read_bytes().decode("utf-8"))
        assert [u["name"] for u in stored["users"]] == ["bob", "Şükrü"]
    events = auditEvents(server)
    assert events.count(f"Received message from Şükrü: {TURKISH}") == 2


# TLS


def makeCertificate(directory: Path) -> tuple[Path, Path]:
    """
    A throwaway self-signed certificate for localhost and 127.0.0.1.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    keyPath, certPath = directory / "key.pem", directory / "cert.pem"
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


class RawClient(Protocol):
    """
    Collect the bytes a server sends, whatever they are.
    """

    def __init__(self) -> None:
        self.data = b""
        self.closed: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)


@pytest_twisted.ensureDeferred
async def test_tls_listener(tmp_path: Path) -> None:
    """
    When the server listens on an ssl: endpoint with a self-signed certificate, TLS
    clients log in and chat with plain TCP clients.
    """
    keyPath, certPath = makeCertificate(tmp_path)
    async with running(
        tmp_path,
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--listen",
        f"ssl:0:interface=127.0.0.1:privateKey={keyPath}:certKey={certPath}",
    ) as server:
        tlsPort = server.service.listeners[1].port.getHost().port
        assert tlsPort != server.port
        # A client that does not verify the certificate...
        anyCert = SSL4ClientEndpoint(
            reactor, "127.0.0.1", tlsPort, ssl.CertificateOptions(), timeout=5
        )
        alice = await server.connect(anyCert)
        await alice.login("alice", "secret")
        # ...and one that checks it is the one made above.
        trusted = ssl.optionsForClientTLS(
            "localhost", trustRoot=ssl.Certificate.loadPEM(certPath.read_bytes())
        )
        bob = await server.connect(
            SSL4ClientEndpoint(reactor, "127.0.0.1", tlsPort, trusted, timeout=5)
        )
        await bob.login("bob", "secret")
        await alice.expect("* bob joined the chat.")
        carol = await server.user("carol")
        await alice.expect("* carol joined the chat.")
        await bob.expect("* carol joined the chat.")
        alice.send(TURKISH)
        await bob.expect(f"alice > {TURKISH}")
        await carol.expect(f"alice > {TURKISH}")
        carol.send("plain hello")
        await alice.expect("carol > plain hello")
        await bob.expect("carol > plain hello")
        await barrier(bob, "alice, bob, carol")

        # A plain-text client on the TLS port gets no chat.
        plain = RawClient()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", tlsPort, timeout=5), plain
        ).addTimeout(5, reactor)
        plain.transport.write(b"mallory\nsecret\nhello\n")
        await plain.closed.addTimeout(5, reactor)
        assert b"Welcome" not in plain.data
        await barrier(alice, "alice, bob, carol")
    # TLS connections close at shutdown without waiting for the grace period.
    assert server.stoppedIn < 3
    events = auditEvents(server)
    for name in ("alice", "bob", "carol"):
        assert f"Lost connection from {name}" in events


# Audit log


@pytest_twisted.ensureDeferred
async def test_audit_log_lines(tmp_path: Path) -> None:
    """
    When users register, log in, talk, pair up and leave, the server writes timestamped
    audit lines for each event and never private text or passwords.
    """
    async with running(tmp_path) as server:
        alice, bob = await server.logins("alice", "bob")
        alicePort = alice.transport.getHost().port
        alice.send("public words")
        await bob.expect("alice > public words")
        await goPrivate(alice, bob, "alice", "bob", "Y")
        alice.send("private words")
        await bob.expect("alice > private words")
        alice.send("EXIT PM")
        await alice.expect("You left the private chat with bob.")
        await bob.expect("Your partner alice left pm!")
        alice.send("LOGOUT")
        await alice.expect("Goodbye, alice!")
        await alice.expectClosed()
        await bob.expect("* alice left the chat.")
        bob.close()
        await bob.whenClosed()
        await sleep(1.2)  # the online-users line is written at most once a second
    events = auditEvents(server)
    expected = [
        "User with alice successfully registered.",
        "User alice logged in.",
        f"Accepted new connection from 127.0.0.1:{alicePort} username:alice",
        "User with bob successfully registered.",
        "User bob logged in.",
        "Received message from alice: public words",
        "User: alice requested private chat with user: bob",
        "The PM start between alice and bob",
        "PM between users alice and bob closed.",
        "alice logged out.",
        "Lost connection from bob",
    ]
    positions = [events.index(event) for event in expected]
    assert positions == sorted(positions), events
    assert "Online users (1): alice" in events
    assert events[-1] == "Online users (0): "
    text = server.auditLog.read_text("utf-8")
    assert "private words" not in text
    assert "secret" not in text
    first = datetime.datetime.strptime(
        server.auditLines()[0][:23], "%Y-%m-%d %H:%M:%S,%f"
    )
    assert abs((datetime.datetime.now() - first).total_seconds()) < 60


# Presence over UDP


@pytest_twisted.ensureDeferred
async def test_heartbeats_over_udp(tmp_path: Path) -> None:
    """
    When a client heartbeats over real UDP its session stays, and when it falls silent
    the server declares it offline and closes it.
    """
    async with running(
        tmp_path, "--heartbeat-interval", "0.1", "--heartbeat-timeout", "0.5"
    ) as server:
        alice, bob = await server.logins("alice", "bob")
        alice.send("@heartbeat")
        words = (await alice.next()).split(" ")
        assert len(words) == 5, words
        assert words[0] == "HEARTBEAT"
        assert int(words[1]) == server.udpPort != 0
        assert words[3:] == ["0.1", "0.5"]
        token = words[2]
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", token)

        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.setblocking(False)
            target = ("127.0.0.1", server.udpPort)

            def beat() -> None:
                udp.sendto(token.encode("ascii"), target)

            beating = LoopingCall(beat)
            beating.start(0.1)
            try:
                await sleep(1.5)  # three timeouts
                assert not alice.isClosed
                await barrier(alice, "alice, bob")
            finally:
                beating.stop()

            # Garbage, the old "time|username" form and a near-token do not
            # keep alice online.
            for junk in (b"garbage", b"1700000000|alice", token[:-1].encode()):
                udp.sendto(junk, target)
            await alice.whenClosed(3)
            await bob.expect("* alice left the chat.", timeout=3)
            # The token died with the session.
            udp.sendto(token.encode("ascii"), target)
            await barrier(bob, "bob")
        finally:
            udp.close()
    events = auditEvents(server)
    assert (
        "Could not receive any heartbeat from USER: alice for 0.5 secs "
        "and he/she became offline!"
    ) in events
    assert "Lost connection from alice" in events


# Shutdown


@pytest_twisted.ensureDeferred
async def test_shutdown_tells_users(tmp_path: Path) -> None:
    """
    When the service stops, the server tells every connected user it is shutting down
    and closes their connections.
    """
    service = tap.makeService(options(tmp_path), reactor)
    service.startService()
    server = Server(service, tmp_path)
    stopped = None
    try:
        alice, bob = await server.logins("alice", "bob")
        halfway = await server.connect()
        await halfway.expect(WELCOME, "Username: ")
        stopped = service.stopService()
        await halfway.expect("Server shutting down.")
        await halfway.expectClosed()
        for client in (alice, bob):
            await client.expect("Server shutting down.")
            await client.whenClosed()
            # At most the departure of the other user may follow.
            assert set(client.unread()) <= {
                "* alice left the chat.",
                "* bob left the chat.",
            }
        await stopped.addTimeout(10, reactor)
        events = auditEvents(server)
        assert "Lost connection from alice" in events
        assert "Lost connection from bob" in events
    finally:
        if stopped is None:
            await service.stopService()
        for client in server.clients:
            client.close()
