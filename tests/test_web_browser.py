"""
The web page in a real browser: headless Chromium (Debian's C{chromium})
driven by Playwright's sync API against C{twistd -n chat} run as a process
(pytest-twisted runs each test inside the reactor, so the server cannot run
in the test's own process), beside C{nc}-style users on raw sockets.
"""

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_twistd import STARTUP_TIMEOUT, LineSocket, Twistd

CHROMIUM = "/usr/bin/chromium"
WEB = "tcp:port=0:interface=127.0.0.1"
# Spelled apart from WEB and the line listener, to find its port in the log.
IRC = "tcp:interface=127.0.0.1:port=0"
# Short: an action that cannot happen fails in seconds, not in Playwright's 30.
ACTION_TIMEOUT = 5000
RECONNECT_TIMEOUT = 30000

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None


def browserAvailable() -> None:
    """
    Skip the calling test if Chromium or Playwright is missing, unless
    C{TWISTED_CHAT_REQUIRE_BROWSER} is set (as in CI), where it is an error.
    """
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    elif sync_playwright is None:
        missing = "playwright is not installed (pip install -e '.[test]')"
    if missing is not None:
        if os.environ.get("TWISTED_CHAT_REQUIRE_BROWSER"):
            pytest.fail(f"{missing} (TWISTED_CHAT_REQUIRE_BROWSER)")
        pytest.skip(missing)


class WebServer:
    """
    A C{twistd -n chat} process with a web listener, and the users it has.
    """

    def __init__(self, directory: Path, *extra: str, web: str = WEB) -> None:
        self.twistd = Twistd(directory, "--web-listen", web, *extra)
        self.port = self.listening(web)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.lines: list[LineSocket] = []

    def listening(self, description: str, frontend: str = "web") -> int:
        """
        The port of the listener C{description} of C{frontend}, once the log
        says it listens.
        """
        listening = re.compile(
            rf"Listening on {re.escape(description)}: 127\.0\.0\.1:(\d+)"
            rf" \({frontend}\)"
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            match = listening.search(self.twistd.log.read_text("utf-8", "replace"))
            if match:
                return int(match.group(1))
            time.sleep(0.05)
        raise AssertionError(f"no {description} listener:\n{self.twistd.describe()}")

    def line(self, name: str) -> LineSocket:
        """
        An nc-style user, logged in as C{name}.
        """
        user = LineSocket(self.twistd.port)
        self.lines.append(user)
        user.login(name, "secret")
        return user

    def irc(self, name: str) -> LineSocket:
        """
        An IRC user, registered as C{name} (the server needs C{--irc-listen
        IRC}), with the names of #general read.
        """
        user = LineSocket(self.listening(IRC, "IRC"))
        self.lines.append(user)
        user.send("PASS secret", f"NICK {name}", f"USER {name} 0 * :{name}")
        while f" 366 {name} #general " not in user.next():
            pass
        return user

    def restart(self, *extra: str) -> None:
        """
        Stop the server (SIGTERM) and start it again on the same files and
        web port.
        """
        self.twistd.process.send_signal(signal.SIGTERM)
        self.twistd.assertCleanExit()
        self.stop()
        self.twistd.log.rename(self.twistd.directory / "twistd-before.log")
        web = f"tcp:{self.port}:interface=127.0.0.1"
        self.twistd = Twistd(self.twistd.directory, "--web-listen", web, *extra)
        self.listening(web)

    def stop(self) -> None:
        for user in self.lines:
            user.close()
        self.lines = []
        self.twistd.stop()


class WebPage:
    """
    One browser page of the chat, with every dialog it tried to open (none
    should) and every script error.
    """

    def __init__(self, page: "Page", server: WebServer) -> None:
        self.page = page
        self.server = server
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.set_default_timeout(ACTION_TIMEOUT)
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def login(self, name: str, password: str = "secret") -> None:
        page = self.page
        page.goto(self.server.url)
        page.fill("#name", name)
        page.fill("#password", password)
        page.click("#login-button")
        expect(page.locator("#status")).to_have_text(f"Connected as {name}")

    def say(self, text: str) -> None:
        self.page.fill("#text", text)
        self.page.press("#text", "Enter")

    def line(self, text: str) -> Any:
        """
        The line of the shown room whose text is exactly C{text}.
        """
        return self.page.locator("#lines .line .text", has_text=text).filter(
            has_text=re.compile("^" + re.escape(text) + "$")
        )

    def check(self) -> None:
        assert self.dialogs == []
        assert self.errors == []


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    browserAvailable()
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--disable-quic", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    server = WebServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def web(browser: "Browser", server: WebServer) -> Iterator[WebPage]:
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    try:
        page = WebPage(context.new_page(), server)
        yield page
        page.check()
    finally:
        context.close()


def test_login_and_lines(server: WebServer, web: WebPage) -> None:
    """
    When a user logs in on the page, a group line from an nc user appears in it, and
    a line typed in the page reaches that user as 'alice > text'.
    """
    web.login("alice")
    bob = server.line("bob")
    expect(web.page.locator("#lines .system").last).to_have_text("bob joined the chat.")
    bob.send("hello from nc")
    line = web.line("hello from nc").locator("xpath=..")
    expect(line.locator(".from")).to_have_text("bob")
    expect(line.locator("time")).to_have_text(re.compile(r"\d"))
    web.say("hello from the page")
    bob.expect("alice > hello from the page")
    expect(web.line("hello from the page")).to_be_visible()


def test_markup_is_text(server: WebServer, web: WebPage) -> None:
    """
    When a line holds HTML or script, the page shows it as literal text, makes no
    element of it and runs none of it: no dialog opens.
    """
    web.login("alice")
    bob = server.line("bob")
    attacks = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        '<b onmouseover="alert(3)">bold</b> &amp; <a href="javascript:alert(4)">x</a>',
    ]
    for attack in attacks:
        bob.send(attack)
        expect(web.line(attack)).to_be_visible()
    web.say("<svg onload=alert(5)>")
    bob.expect("alice > <svg onload=alert(5)>")
    expect(web.line("<svg onload=alert(5)>")).to_be_visible()
    for tag in ("img", "script", "b", "a", "svg"):
        assert web.page.locator(f"#lines {tag}").count() == 0, tag
    web.page.locator("#lines").hover()
    web.page.wait_for_timeout(300)
    assert web.dialogs == []


def test_private_chat(server: WebServer, web: WebPage, tmp_path: Path) -> None:
    """
    When an nc user asks the page's user for a private chat and Accept is clicked,
    their lines go to each other only (a third user gets none), the page shows the
    chat apart, and after leaving it says how many room lines were missed.
    """
    web.login("alice")
    carol = server.line("carol")
    bob = server.line("bob")
    carol.expect("* bob joined the chat.")
    bob.send("@PM alice")
    bob.expect("Private chat request sent to alice.")
    request = web.page.locator("#requests .request")
    expect(request).to_contain_text("bob wants to have a private chat with you.")
    expect(request.get_by_role("button", name="Reject")).to_be_visible()
    request.get_by_role("button", name="Accept").click()
    bob.expect("You are now in a private chat with alice. Type EXIT PM to leave.")
    page = web.page
    expect(page.locator("#private-title")).to_have_text("Private chat with bob")
    expect(page.locator("#text")).to_be_disabled()
    page.fill("#private-text", "just between us")
    page.press("#private-text", "Enter")
    bob.expect("alice > just between us")
    bob.send("agreed")
    expect(page.locator("#private-lines .text", has_text="agreed")).to_be_visible()
    expect(
        page.locator("#private-lines .text", has_text="just between us")
    ).to_be_visible()
    carol.send("anyone here?")
    # Carol got nothing of the private chat: her next line is the answer.
    carol.send("@WHO")
    carol.expect("Online users: alice (PM with bob), bob (PM with alice), carol")
    page.screenshot(path=str(tmp_path / "private.png"))
    assert (tmp_path / "private.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.get_by_role("button", name="Leave private chat").click()
    bob.expect("Your partner alice left pm!")
    expect(page.locator("#private")).to_be_hidden()
    missed = page.locator("#lines .missed")
    expect(missed).to_contain_text("You missed 1 lines in #general")
    assert web.line("anyone here?").count() == 0
    missed.get_by_role("button", name="Show them").click()
    expect(web.line("anyone here?")).to_be_visible()


def test_irc_rich_text(tmp_path: Path, browser: "Browser") -> None:
    """
    When an IRC user sends /me, formatting and a NOTICE, then parts and quits with
    reasons, the page shows '* bob waves', the text without formatting, the notice
    marked, and each reason.
    """
    server = WebServer(tmp_path, "--irc-listen", IRC)
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    try:
        web = WebPage(context.new_page(), server)
        web.login("alice")
        bob = server.irc("bob")
        page = web.page
        expect(page.locator("#lines .system").last).to_have_text("bob joined the chat.")
        bob.send(
            "PRIVMSG #general :\x01ACTION waves\x01",
            "PRIVMSG #general :\x02bold\x02 \x0304move\x03",
            "NOTICE #general :heads up",
        )
        action = page.locator("#lines .line.action")
        expect(action.locator(".from")).to_have_text("* bob")
        expect(action.locator(".text")).to_have_text("waves")
        expect(web.line("bold move")).to_be_visible()
        expect(page.locator("#lines .line.notice .text")).to_have_text("heads up")
        bob.send("PART #general :brb", "JOIN #general", "QUIT :off to bed")
        system = page.locator("#lines .system")
        expect(system.filter(has_text="bob left #general (brb).")).to_be_visible()
        expect(system.last).to_have_text("bob left the chat (off to bed).")
        web.check()
    finally:
        context.close()
        server.stop()


def test_rooms_and_history(tmp_path: Path, browser: "Browser") -> None:
    """
    When the page's user logs in, it shows the room's last lines and loads earlier
    ones on demand; rooms are joined, switched and left, with their members.
    """
    server = WebServer(tmp_path, "--history-on-login", "10")
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    try:
        web = WebPage(context.new_page(), server)
        bob = server.line("bob")
        for n in range(15):
            bob.send(f"old {n}")
        bob.send("@WHO")
        bob.expect("Online users: bob")
        web.login("alice")
        bob.expect("* alice joined the chat.")
        page = web.page
        expect(web.line("old 14")).to_be_visible()
        expect(web.line("old 5")).to_be_attached()
        assert web.line("old 4").count() == 0
        page.get_by_role("button", name="Load earlier lines").click()
        expect(web.line("old 0")).to_be_attached()
        expect(page.locator("#more")).to_have_text("No earlier lines")
        texts = page.locator("#lines .line:not(.system) .text").all_text_contents()
        assert texts == [f"old {n}" for n in range(15)]

        page.fill("#join-name", "#python")
        page.press("#join-name", "Enter")
        expect(page.locator("#room-name")).to_have_text("#python")
        bob.send("@JOIN #python")
        bob.expect("You are now in #python (2 users).")
        expect(page.locator("#members li", has_text="bob")).to_be_visible()
        bob.send("in python")
        expect(web.line("in python")).to_be_visible()
        web.say("hello python")
        bob.expect("alice > hello python")

        page.locator("#rooms .room-button", has_text="#general").click()
        expect(page.locator("#room-name")).to_have_text("#general")
        assert web.line("in python").count() == 0
        page.get_by_role("button", name="Leave #python").click()
        bob.expect("* alice left #python.")
        expect(page.locator("#rooms li")).to_have_count(1)
        expect(page.locator("#other-rooms li", has_text="#python")).to_be_visible()
        web.check()
    finally:
        context.close()
        server.stop()


def test_reconnect(server: WebServer, web: WebPage) -> None:
    """
    When the server restarts, the page says it is reconnecting, logs in again with
    what the user typed, and chats on.
    """
    web.login("alice")
    page = web.page
    server.restart()
    expect(page.locator("#status")).to_have_text(
        re.compile("econnecting"), timeout=RECONNECT_TIMEOUT
    )
    expect(page.locator("#status")).to_have_text(
        "Connected as alice", timeout=RECONNECT_TIMEOUT
    )
    expect(page.locator("#lines .system", has_text="Reconnected.")).to_be_visible()
    bob = server.line("bob")
    bob.send("welcome back")
    expect(web.line("welcome back")).to_be_visible()
    web.say("thanks")
    bob.expect("alice > thanks")


def test_phone(server: WebServer, browser: "Browser") -> None:
    """
    When the page is shown on a phone-sized screen, the chat fills it and the rooms
    open from a button.
    """
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        web = WebPage(context.new_page(), server)
        web.login("alice")
        page = web.page
        expect(page.locator("#sidebar")).to_be_hidden()
        expect(page.locator("#text")).to_be_visible()
        box = page.locator("#say").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390
        page.get_by_role("button", name="Rooms").click()
        expect(page.locator("#sidebar")).to_be_visible()
        expect(page.locator("#rooms .room-button", has_text="#general")).to_be_visible()
        web.check()
    finally:
        context.close()


def test_wrong_password(server: WebServer, web: WebPage) -> None:
    """
    When the password is wrong, the page says so on the login form and lets the
    user try again.
    """
    server.line("bob").close()
    page = web.page
    page.goto(server.url)
    page.fill("#name", "bob")
    page.fill("#password", "wrong")
    page.click("#login-button")
    expect(page.locator("#login-error")).to_have_text("Wrong password.")
    page.fill("#password", "secret")
    page.click("#login-button")
    expect(page.locator("#status")).to_have_text("Connected as bob")
