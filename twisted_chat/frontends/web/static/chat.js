// twisted-chat's page: JSON messages over the WebSocket at /ws (the schema
// is in the README).  Every text from the server is put in the page with
// textContent, never as markup.  The password lives only in this script's
// memory, to log in again after a reconnect.
"use strict";

(() => {
  const HISTORY_PAGE = 50;
  const RETRY_FIRST = 1000;
  const RETRY_MAX = 30000;

  const state = {
    ws: null,
    creds: null, // {name, password}: what the user typed, in memory only
    me: null,
    loggedIn: false,
    reconnect: false, // whether a dropped socket is opened again
    retries: 0,
    retryTimer: null,
    rooms: new Map(), // folded name -> room
    current: null, // the room shown (the server's current room)
    partner: null,
    loadingMore: null, // {key, limit} of the last "load more"
    farewell: null, // what to show on the login form when the socket closes
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(text, className, onClick) {
    const node = el("button", className, text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  const fold = (name) => String(name).normalize("NFKC").toLowerCase();

  // Status and alerts

  function setStatus(text, trouble) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("trouble", Boolean(trouble));
  }

  function showAlert(text, info) {
    const alerts = $("alerts");
    const alert = el("div", info ? "alert info" : "alert");
    alert.setAttribute("role", info ? "status" : "alert");
    alert.append(el("span", "", text));
    alert.append(button("×", "", () => alert.remove()));
    alert.lastChild.setAttribute("aria-label", "Dismiss");
    alerts.append(alert);
    while (alerts.children.length > 3) alerts.firstChild.remove();
    setTimeout(() => alert.remove(), info ? 6000 : 15000);
  }

  // The socket

  function connect() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws");
    let opened = false;
    state.ws = ws;
    setStatus(state.retries ? "Reconnecting…" : "Connecting…", state.retries > 0);
    ws.addEventListener("open", () => {
      opened = true;
      setStatus("Logging in…");
      send({ type: "login", name: state.creds.name, password: state.creds.password });
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      const handler = HANDLERS[message.type];
      if (handler) handler(message);
      else if (message.text) showAlert(String(message.text), true);
    });
    ws.addEventListener("close", () => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.loggedIn = false;
      if (state.reconnect && state.creds) {
        scheduleReconnect();
      } else {
        showLogin(opened ? state.farewell || "Disconnected." : "Cannot reach the server.");
      }
      state.farewell = null;
    });
  }

  function scheduleReconnect() {
    const base = Math.min(RETRY_MAX, RETRY_FIRST * 2 ** state.retries);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    state.retries += 1;
    setStatus(`Connection lost. Reconnecting in ${Math.ceil(delay / 1000)} s…`, true);
    setComposing(false);
    state.retryTimer = setTimeout(connect, delay);
  }

  function send(message) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(message));
      return true;
    }
    showAlert("Not connected: the message was not sent.");
    return false;
  }

  // Views

  function showLogin(error) {
    state.loggedIn = false;
    $("chat-view").hidden = true;
    $("login-view").hidden = false;
    $("logout").hidden = true;
    $("menu").hidden = true;
    $("login-button").disabled = false;
    $("login-error").textContent = error || "";
    setStatus("Not connected");
    $($("name").value ? "password" : "name").focus();
  }

  function showChat() {
    $("login-view").hidden = true;
    $("chat-view").hidden = false;
    $("logout").hidden = false;
    $("menu").hidden = false;
    setComposing(true);
  }

  function setComposing(enabled) {
    $("private-text").disabled = !enabled;
    $("text").disabled = !enabled || state.partner !== null;
  }

  // Rooms

  function roomFor(name) {
    const key = fold(name);
    let room = state.rooms.get(key);
    if (!room) {
      room = {
        key,
        name,
        count: null,
        members: [],
        list: el("ol", "lines"),
        ids: new Set(),
        more: true,
        unread: 0,
      };
      state.rooms.set(key, room);
      renderRooms();
    }
    return room;
  }

  function renderRooms() {
    const list = $("rooms");
    list.replaceChildren();
    const rooms = [...state.rooms.values()].sort((a, b) => a.key.localeCompare(b.key));
    for (const room of rooms) {
      const item = el("li");
      const open = button(room.name, "room-button", () => switchTo(room));
      if (room === state.current) open.classList.add("current");
      item.append(open);
      if (room.unread) item.append(el("span", "unread", String(room.unread)));
      if (room.key !== "#general") {
        const leave = button("Leave", "small", () => send({ type: "leave", room: room.name }));
        leave.setAttribute("aria-label", `Leave ${room.name}`);
        item.append(leave);
      }
      list.append(item);
    }
  }

  function switchTo(room) {
    if (room !== state.current) send({ type: "join", room: room.name });
    $("sidebar").classList.remove("open");
  }

  function show(room) {
    state.current = room;
    room.unread = 0;
    $("room-name").textContent = room.name;
    $("room-count").textContent = room.count === null ? "" : `${room.count} here`;
    $("leave-room").hidden = room.key === "#general";
    $("text").placeholder = `Message ${room.name}`;
    const lines = $("lines");
    lines.replaceChildren($("more"), room.list);
    renderMore(room);
    renderRooms();
    renderMembers();
    lines.scrollTop = lines.scrollHeight;
  }

  function renderMore(room) {
    const more = $("more");
    more.disabled = !room.more;
    more.textContent = room.more ? "Load earlier lines" : "No earlier lines";
  }

  function renderMembers() {
    const room = state.current;
    const list = $("members");
    list.replaceChildren();
    if (!room) return;
    $("members-title").textContent = `Members of ${room.name}`;
    for (const name of room.members) {
      const item = el("li");
      item.append(el("span", "name", name));
      if (state.me && fold(name) !== fold(state.me)) {
        const ask = button("Chat privately", "small pm", () =>
          send({ type: "request_private", name }),
        );
        ask.setAttribute("aria-label", `Chat privately with ${name}`);
        item.append(ask);
      }
      list.append(item);
    }
  }

  function setMembers(room, names) {
    room.members = names;
    room.count = names.length;
    if (room === state.current) {
      $("room-count").textContent = `${room.count} here`;
      renderMembers();
    }
  }

  function addMember(room, name) {
    if (!room.members.some((member) => fold(member) === fold(name))) {
      const names = [...room.members, name];
      names.sort((a, b) => fold(a).localeCompare(fold(b)));
      setMembers(room, names);
    }
  }

  function removeMember(room, name) {
    const names = room.members.filter((member) => fold(member) !== fold(name));
    if (names.length !== room.members.length) {
      setMembers(room, names);
      return true;
    }
    return false;
  }

  // Lines

  function clock(iso) {
    const when = iso ? new Date(iso) : new Date();
    const time = el("time", "", when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    return time;
  }

  // A line of a room or of the private chat: {from, text, time, action,
  // notice}.  An action (/me) reads "* alice waves"; a notice (an IRC
  // user's NOTICE, which no one should answer automatically) is marked.
  function lineItem(line) {
    const item = el("li", "line");
    if (state.me && fold(line.from) === fold(state.me)) item.classList.add("mine");
    if (line.action) item.classList.add("action");
    if (line.notice) item.classList.add("notice");
    const from = line.action ? `* ${line.from}` : line.from;
    item.append(clock(line.time), el("span", "from", from), el("span", "text", line.text));
    return item;
  }

  // "left #room." or "left #room (why)." when the user gave a reason.
  function leaving(what, reason) {
    return reason ? `${what} (${reason}).` : `${what}.`;
  }

  function atBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  function append(list, item, box) {
    const follow = atBottom(box);
    list.append(item);
    if (follow) box.scrollTop = box.scrollHeight;
  }

  function addLine(room, line) {
    if (line.id && room.ids.has(line.id)) return;
    if (line.id) room.ids.add(line.id);
    const item = lineItem(line);
    item.dataset.id = line.id || "";
    append(room.list, item, $("lines"));
    if (room !== state.current) {
      room.unread += 1;
      renderRooms();
    }
  }

  function systemLine(room, text) {
    const item = el("li", "line system", text);
    append(room.list, item, $("lines"));
    return item;
  }

  function addHistory(room, lines) {
    const box = $("lines");
    const height = box.scrollHeight;
    const first = room.list.querySelector("li[data-id]:not([data-id=''])");
    const fresh = room.ids.size === 0;
    for (const line of lines) {
      if (room.ids.has(line.id)) continue;
      room.ids.add(line.id);
      const item = lineItem(line);
      item.dataset.id = line.id;
      if (first && compareIds(line.id, first.dataset.id) < 0) room.list.insertBefore(item, first);
      else room.list.append(item);
    }
    if (room === state.current) {
      box.scrollTop = fresh ? box.scrollHeight : box.scrollTop + box.scrollHeight - height;
    }
  }

  function compareIds(a, b) {
    const [am, as] = a.split("-").map(Number);
    const [bm, bs] = b.split("-").map(Number);
    return am - bm || as - bs;
  }

  function loadMore() {
    const room = state.current;
    if (!room || !room.more) return;
    const first = room.list.querySelector("li[data-id]:not([data-id=''])");
    const message = { type: "history", room: room.name, limit: HISTORY_PAGE };
    if (first) message.before = first.dataset.id;
    state.loadingMore = { key: room.key, limit: HISTORY_PAGE };
    send(message);
  }

  // Private chat

  function addRequest(text, buttons) {
    const card = el("div", "request");
    card.append(el("span", "", text), ...buttons);
    $("requests").replaceChildren(card);
    return card;
  }

  function clearRequests() {
    $("requests").replaceChildren();
  }

  function askedBy(name) {
    const accept = button("Accept", "accept", () => {
      send({ type: "answer", accept: true });
      clearRequests();
    });
    const reject = button("Reject", "reject", () => {
      send({ type: "answer", accept: false });
      clearRequests();
    });
    addRequest(`${name} wants to have a private chat with you.`, [accept, reject]);
    setStatus(`${name} asks you for a private chat`);
  }

  function startPrivate(partner) {
    clearRequests();
    if (state.partner === null || fold(state.partner) !== fold(partner)) {
      $("private-lines").replaceChildren();
    }
    state.partner = partner;
    $("private-title").textContent = `Private chat with ${partner}`;
    $("private").hidden = false;
    $("chat-view").classList.add("private");
    $("room-note").hidden = false;
    setComposing(true);
    setStatus(`In a private chat with ${partner}`);
    $("private-text").focus();
  }

  function endPrivate(text) {
    state.partner = null;
    $("private").hidden = true;
    $("chat-view").classList.remove("private");
    $("room-note").hidden = true;
    setComposing(true);
    setStatus(`Connected as ${state.me}`);
    showAlert(text, true);
  }

  function privateLine(line) {
    append($("private-lines"), lineItem(line), $("private-lines"));
  }

  // What the server says

  const HANDLERS = {
    logged_in(m) {
      state.me = m.name;
      state.loggedIn = true;
      state.reconnect = true;
      const again = state.retries > 0 || state.rooms.size > 0;
      state.retries = 0;
      state.creds.name = m.name;
      $("password").value = "";
      setStatus(`Connected as ${m.name}`);
      showChat();
      const general = roomFor("#general");
      if (m.takeover) {
        send({ type: "whois", name: m.name });
      } else {
        if (again) systemLine(state.current || general, "Reconnected.");
        // The server starts afresh in #general: join the rooms open here
        // again, the one shown last.
        const shown = state.current;
        for (const room of state.rooms.values()) {
          if (room !== general && room !== shown) send({ type: "join", room: room.name });
        }
        if (shown && shown !== general) send({ type: "join", room: shown.name });
        if (state.partner) endPrivate(`The private chat with ${state.partner} ended.`);
      }
      show(state.current || general);
      send({ type: "members", room: state.current.name });
      send({ type: "rooms" });
    },
    login_refused(m) {
      state.reconnect = false;
      state.creds = null;
      state.farewell = m.text;
      $("password").value = "";
      showLogin(m.text);
    },
    line(m) {
      addLine(roomFor(m.room), m);
    },
    history(m) {
      const room = roomFor(m.room);
      addHistory(room, m.lines);
      const asked = state.loadingMore;
      if (asked && asked.key === room.key) {
        state.loadingMore = null;
        if (m.lines.length < asked.limit) room.more = false;
        if (room === state.current) renderMore(room);
      }
    },
    in_room(m) {
      const room = roomFor(m.room);
      room.count = m.count;
      show(room);
      send({ type: "members", room: room.name });
      send({ type: "rooms" });
    },
    left_room(m) {
      const room = state.rooms.get(fold(m.room));
      state.rooms.delete(fold(m.room));
      if (room === state.current) state.current = null;
      renderRooms();
      send({ type: "rooms" });
    },
    members(m) {
      setMembers(roomFor(m.room), m.names);
    },
    rooms(m) {
      const list = $("other-rooms");
      list.replaceChildren();
      for (const room of m.rooms) {
        if (state.rooms.has(fold(room.name))) continue;
        const item = el("li");
        item.append(el("span", "name", `${room.name} (${room.count})`));
        item.append(button("Join", "small", () => send({ type: "join", room: room.name })));
        list.append(item);
      }
      $("other").hidden = list.children.length === 0;
    },
    online(m) {
      const general = roomFor("#general");
      addMember(general, m.name);
      systemLine(general, `${m.name} joined the chat.`);
    },
    offline(m) {
      for (const room of state.rooms.values()) {
        if (removeMember(room, m.name) || room.key === "#general") {
          systemLine(room, leaving(`${m.name} left the chat`, m.reason));
        }
      }
    },
    joined(m) {
      const room = roomFor(m.room);
      addMember(room, m.name);
      systemLine(room, `${m.name} joined ${m.room}.`);
    },
    left(m) {
      const room = roomFor(m.room);
      removeMember(room, m.name);
      systemLine(room, leaving(`${m.name} left ${m.room}`, m.reason));
    },
    missed(m) {
      const room = roomFor(m.room);
      const item = systemLine(room, `You missed ${m.count} lines in ${m.room} during the private chat.`);
      item.classList.add("missed");
      item.append(
        button("Show them", "small", () =>
          send({ type: "history", room: m.room, limit: Math.min(m.count, 200) }),
        ),
      );
    },
    private_request(m) {
      askedBy(m.from);
    },
    request_sent(m) {
      addRequest(`Waiting for ${m.to} to answer your private chat request…`, []);
    },
    private_started(m) {
      startPrivate(m.with);
    },
    private_rejected(m) {
      clearRequests();
      showAlert(`${m.by} rejected your private chat request.`, true);
    },
    request_declined() {
      clearRequests();
      showAlert("Request rejected.", true);
      setStatus(`Connected as ${state.me}`);
    },
    request_expired(m) {
      clearRequests();
      showAlert(
        m.to ? `Your private chat request to ${m.to} expired.` : `The private chat request from ${m.from} expired.`,
        true,
      );
    },
    request_cancelled(m) {
      clearRequests();
      showAlert(
        m.to
          ? `The private chat request to ${m.to} was cancelled.`
          : `The private chat request from ${m.from} was cancelled.`,
        true,
      );
    },
    private(m) {
      privateLine(m);
    },
    private_ended(m) {
      endPrivate(m.by === "you" ? `You left the private chat with ${m.with}.` : `${m.with} left the private chat.`);
    },
    user_info(m) {
      if (!state.me || fold(m.name) !== fold(state.me)) {
        const where = m.rooms.length ? m.rooms.join(", ") : "no room";
        const pm = m.partner ? `, in a private chat with ${m.partner}` : "";
        systemLine(state.current, `${m.name} is online in ${where}${pm}.`);
        return;
      }
      // After a takeover: the rooms the server has for this user.
      const keys = new Set(m.rooms.map(fold));
      for (const name of m.rooms) roomFor(name);
      for (const key of [...state.rooms.keys()]) if (!keys.has(key)) state.rooms.delete(key);
      renderRooms();
      if (!m.partner && state.partner) endPrivate(`The private chat with ${state.partner} ended.`);
    },
    online_users(m) {
      const names = m.users.map((user) => (user.partner ? `${user.name} (in a private chat)` : user.name));
      systemLine(state.current, `Online: ${names.join(", ")}`);
    },
    search_results(m) {
      const names = m.users.map((user) => `${user.name}${user.online ? " (online)" : ""}`);
      systemLine(state.current, `${m.users.length} users match “${m.text}”: ${names.join(", ")}`);
    },
    help(m) {
      systemLine(state.current, `Commands: ${m.commands.join(", ")}`);
    },
    password_changed() {
      showAlert("Password changed.", true);
    },
    heartbeat() {
      showAlert("Heartbeats are for the terminal client; a browser cannot send them.", true);
    },
    goodbye() {
      state.reconnect = false;
      state.creds = null;
      state.farewell = "You logged out.";
    },
    notice(m) {
      showAlert(m.text, true);
      if (m.code === "shutting_down") setStatus(m.text, true);
    },
    error(m) {
      if (m.code === "superseded" || m.code === "login_timeout") {
        state.reconnect = false;
        state.creds = null;
      }
      if (!state.loggedIn || !state.reconnect) state.farewell = m.text;
      showAlert(m.text);
    },
  };

  // What the user does

  function onLogin(event) {
    event.preventDefault();
    const name = $("name").value.trim();
    const password = $("password").value;
    if (!name || !password) return;
    state.creds = { name, password };
    state.retries = 0;
    $("login-error").textContent = "";
    $("login-button").disabled = true;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      send({ type: "login", name, password });
    } else {
      connect();
    }
  }

  function onSay(event) {
    event.preventDefault();
    const input = $("text");
    const text = input.value;
    if (!text.trim() || !state.current) return;
    const message = text.trimStart().startsWith("@")
      ? { type: "command", text }
      : { type: "say", room: state.current.name, text };
    if (send(message)) input.value = "";
  }

  function onPrivateSay(event) {
    event.preventDefault();
    const input = $("private-text");
    if (input.value.trim() && send({ type: "private", text: input.value })) input.value = "";
  }

  function onJoin(event) {
    event.preventDefault();
    const input = $("join-name");
    let name = input.value.trim();
    if (!name) return;
    if (!name.startsWith("#")) name = "#" + name;
    if (send({ type: "join", room: name })) input.value = "";
  }

  function onLogout() {
    if (!send({ type: "logout" })) {
      state.reconnect = false;
      clearTimeout(state.retryTimer);
      state.creds = null;
      showLogin("");
    }
  }

  function onMenu() {
    const sidebar = $("sidebar");
    const open = sidebar.classList.toggle("open");
    $("menu").setAttribute("aria-expanded", String(open));
  }

  $("login").addEventListener("submit", onLogin);
  $("say").addEventListener("submit", onSay);
  $("private-say").addEventListener("submit", onPrivateSay);
  $("join").addEventListener("submit", onJoin);
  $("more").addEventListener("click", loadMore);
  $("leave-room").addEventListener("click", () => state.current && send({ type: "leave", room: state.current.name }));
  $("leave-private").addEventListener("click", () => send({ type: "leave_private" }));
  $("logout").addEventListener("click", onLogout);
  $("menu").addEventListener("click", onMenu);
  $("name").focus();
})();
