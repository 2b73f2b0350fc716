// The Tern web chat: sign in over HTTP, then one WebSocket for everything live.
// All user text goes into the page through textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: null, me: null, ws: null, names: new Map(), current: null, peer: null, last: new Map() };

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(data && data.error ? `${data.error.code}: ${data.error.message}` : response.statusText);
  return data;
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const credentials = { username: $("username").value.trim(), password: $("password").value };
  try {
    if ($("create").checked) await api("POST", "/api/v1/accounts", credentials);
    const session = await api("POST", "/api/v1/sessions", credentials);
    state.token = session.token;
    state.me = session.user_id;
    state.names.set(session.user_id, credentials.username);
    $("me").textContent = credentials.username;
    $("login").hidden = true;
    $("chat").hidden = false;
    connect();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.ws = ws;
  const device = localStorage.getItem("tern-device") || `web-${Math.random().toString(36).slice(2, 10)}`;
  localStorage.setItem("tern-device", device);
  ws.onopen = () => {
    const positions = [...state.last].map(([conversation_id, seq]) => ({ conversation_id, seq }));
    ws.send(JSON.stringify({ type: "connect", token: state.token, device_id: device, client_version: "tern-web/1", positions }));
  };
  ws.onmessage = (event) => onFrame(JSON.parse(event.data));
  ws.onclose = () => {
    $("status").textContent = "offline, reconnecting…";
    if (state.token) setTimeout(connect, 2000);
  };
}

function send(frame) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
}

function onFrame(frame) {
  switch (frame.type) {
    case "session":
      $("status").textContent = "online";
      setInterval(() => send({ type: "ping" }), Math.min(frame.heartbeat_ms, 30000));
      break;
    case "sync_done":
      refreshList();
      break;
    case "message":
      onMessage(frame);
      break;
    case "ack":
      if (!state.current) state.current = frame.conversation_id;
      refreshList();
      break;
    case "typing":
      if (frame.conversation_id === state.current) {
        $("typing").textContent = `${nameOf(frame.user_id)} is typing…`;
        setTimeout(() => ($("typing").textContent = ""), 3000);
      }
      break;
    case "error":
      $("typing").textContent = `${frame.code}: ${frame.message}`;
      break;
    case "kicked":
      state.token = null;
      alert(`Signed out: ${frame.reason}`);
      location.reload();
      break;
  }
}

function onMessage(message) {
  state.last.set(message.conversation_id, message.seq);
  send({ type: "receipt", conversation_id: message.conversation_id, seq: message.seq });
  if (message.conversation_id === state.current) {
    show(message);
    send({ type: "read", conversation_id: message.conversation_id, seq: message.seq });
  }
  refreshList();
}

function nameOf(id) {
  return state.names.get(id) || `user ${id}`;
}

function describe(message) {
  switch (message.kind) {
    case "text": return message.text;
    case "image": return `🖼 ${message.attachment.name} (${message.attachment.width}×${message.attachment.height})`;
    case "file": return `📎 ${message.attachment.name} (${message.attachment.size} bytes)`;
    case "custom": return `[${message.custom_type}] ${message.payload}`;
    case "recalled": return "message recalled";
    case "system": return `${message.event.event.replace(/_/g, " ")}`;
    default: return `(${message.kind})`;
  }
}

function show(message) {
  const item = document.createElement("li");
  if (message.sender_id === state.me) item.classList.add("mine");
  if (message.kind === "system" || message.kind === "recalled") item.classList.add("system");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = nameOf(message.sender_id);
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = describe(message);
  item.append(who, body);
  $("messages").append(item);
  $("messages").scrollTop = $("messages").scrollHeight;
}

async function refreshList() {
  const page = await api("GET", "/api/v1/conversations?limit=50");
  const list = $("conversations");
  list.replaceChildren();
  for (const summary of page.conversations) {
    if (summary.peer) state.names.set(summary.peer.user_id, summary.peer.username);
    const item = document.createElement("li");
    if (summary.conversation_id === state.current) item.classList.add("current");
    const title = document.createElement("strong");
    title.textContent = summary.peer ? summary.peer.username : summary.title || `group ${summary.conversation_id}`;
    item.append(title);
    if (summary.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = summary.unread;
      item.append(badge);
    }
    const preview = document.createElement("span");
    preview.className = "preview";
    preview.textContent = summary.last_message ? describe(summary.last_message) : "";
    item.append(preview);
    item.addEventListener("click", () => open(summary.conversation_id, summary.peer, title.textContent));
    list.append(item);
  }
}

async function open(conversation, peer, title) {
  state.current = conversation;
  state.peer = peer ? peer.user_id : null;
  $("room-title").textContent = title;
  $("messages").replaceChildren();
  $("text").disabled = false;
  $("composer").querySelector("button").disabled = false;
  if (conversation) {
    const page = await api("GET", `/api/v1/conversations/${conversation}/messages?limit=50`);
    page.messages.forEach(show);
    const newest = page.messages[page.messages.length - 1];
    if (newest) send({ type: "read", conversation_id: conversation, seq: newest.seq });
  }
  refreshList();
}

$("new-chat").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const account = await api("GET", `/api/v1/users?username=${encodeURIComponent($("peer").value.trim())}`);
    state.names.set(account.user_id, account.username);
    const page = await api("GET", "/api/v1/conversations?limit=100");
    const existing = page.conversations.find((c) => c.peer && c.peer.user_id === account.user_id);
    await open(existing ? existing.conversation_id : null, account, account.username);
    $("peer").value = "";
  } catch (err) {
    $("typing").textContent = err.message;
  }
});

let lastTyping = 0;
$("text").addEventListener("input", () => {
  if (state.current && Date.now() - lastTyping > 2000) {
    lastTyping = Date.now();
    send({ type: "typing", conversation_id: state.current });
  }
});

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) return;
  const client_msg_id = `web-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const frame = { type: "send", client_msg_id, kind: "text", text };
  if (state.current) frame.conversation_id = state.current;
  else frame.to_user = state.peer;
  send(frame);
  show({ sender_id: state.me, kind: "text", text });
  $("text").value = "";
});
