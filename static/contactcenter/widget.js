// Website chat widget. Served by /widget/<public key>.js wrapped as (function (CONFIG) { ... })(config).
// Everything is built with the DOM API and textContent: no HTML from the server or the visitor is parsed.
// Messages are fetched every CONFIG.pollMs (polling, no websockets). The visitor's chat id and token
// live in sessionStorage for this tab only.
"use strict";
var KEY = CONFIG.key;
var BASE = CONFIG.base + "/" + encodeURIComponent(KEY);
var STORE = "crmWidget:" + KEY;
var state = { chat: null, token: null, lastId: 0, seen: {}, timer: null, busy: false };

function el(tag, attrs, text) {
  var node = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
  if (text !== undefined) node.textContent = text;
  return node;
}

function api(method, path, body) {
  var headers = { "Content-Type": "application/json" };
  if (state.token) headers["X-Widget-Token"] = state.token;
  return fetch(BASE + path, {
    method: method,
    mode: "cors",
    credentials: "omit",
    headers: headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then(function (response) {
    return response.json().catch(function () { return {}; }).then(function (data) {
      return { ok: response.ok, status: response.status, data: data };
    });
  });
}

var css = [
  ".crmw-button{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:24px;padding:12px 18px;background:#0d6efd;color:#fff;font:600 15px system-ui,sans-serif;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}",
  ".crmw-panel{position:fixed;right:20px;bottom:80px;z-index:2147483000;width:340px;max-height:520px;display:flex;flex-direction:column;background:#fff;color:#222;border:1px solid #ccd;border-radius:12px;box-shadow:0 8px 28px rgba(0,0,0,.25);font:14px system-ui,sans-serif;overflow:hidden}",
  ".crmw-panel[hidden]{display:none}",
  ".crmw-head{display:flex;justify-content:space-between;align-items:center;padding:10px 12px;background:#0d6efd;color:#fff;font-weight:600}",
  ".crmw-head button{background:none;border:0;color:#fff;font-size:18px;cursor:pointer}",
  ".crmw-body{padding:10px 12px;display:flex;flex-direction:column;gap:8px;overflow:auto}",
  ".crmw-body input,.crmw-body textarea{width:100%;box-sizing:border-box;padding:6px 8px;border:1px solid #bbc;border-radius:6px;font:inherit}",
  ".crmw-log{display:flex;flex-direction:column;gap:6px;min-height:160px;max-height:300px;overflow:auto}",
  ".crmw-msg{max-width:80%;padding:6px 10px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}",
  ".crmw-visitor{align-self:flex-end;background:#d7ebff}",
  ".crmw-agent{align-self:flex-start;background:#f0f0f3}",
  ".crmw-system{align-self:center;font-size:12px;color:#666}",
  ".crmw-author{display:block;font-size:11px;color:#666}",
  ".crmw-row{display:flex;gap:6px}",
  ".crmw-primary{background:#0d6efd;color:#fff;border:0;border-radius:6px;padding:6px 12px;cursor:pointer;font:inherit}",
  ".crmw-secondary{background:#fff;color:#b02a37;border:1px solid #b02a37;border-radius:6px;padding:4px 10px;cursor:pointer;font:inherit}",
  ".crmw-error{color:#b02a37;font-size:13px}",
].join("\n");

var style = el("style");
style.textContent = css;
document.head.appendChild(style);

var button = el("button", { type: "button", class: "crmw-button", "data-testid": "crm-widget-button" }, CONFIG.title);
var panel = el("div", { class: "crmw-panel", role: "dialog", "aria-label": CONFIG.title, "data-testid": "crm-widget-panel" });
panel.hidden = true;
var head = el("div", { class: "crmw-head" });
head.appendChild(el("span", {}, CONFIG.title));
var close = el("button", { type: "button", "aria-label": "Minimise chat" }, "\u2013");
head.appendChild(close);
panel.appendChild(head);
var body = el("div", { class: "crmw-body" });
panel.appendChild(body);
var error = el("div", { class: "crmw-error", role: "alert", "data-testid": "crm-widget-error" });

// Start form
var form = el("form", { "data-testid": "crm-widget-start" });
var nameInput = el("input", { name: "name", placeholder: "Your name", maxlength: "200", "aria-label": "Your name", "data-testid": "crm-widget-name" });
var emailInput = el("input", { name: "email", type: "email", placeholder: "Your email", maxlength: "254", "aria-label": "Your email", "data-testid": "crm-widget-email" });
var firstInput = el("textarea", { name: "text", rows: "3", placeholder: "How can we help?", maxlength: "10000", "aria-label": "Your message", "data-testid": "crm-widget-first" });
var startButton = el("button", { type: "submit", class: "crmw-primary", "data-testid": "crm-widget-submit" }, "Start chat");
[nameInput, emailInput, firstInput, startButton].forEach(function (node) { form.appendChild(node); });

// Chat view
var chatView = el("div", { "data-testid": "crm-widget-chat" });
var log = el("div", { class: "crmw-log", "aria-live": "polite", "data-testid": "crm-widget-log" });
var sendForm = el("form", { class: "crmw-row" });
var input = el("input", { name: "text", placeholder: "Type a message", maxlength: "10000", "aria-label": "Message", "data-testid": "crm-widget-input" });
var sendButton = el("button", { type: "submit", class: "crmw-primary", "data-testid": "crm-widget-send" }, "Send");
sendForm.appendChild(input);
sendForm.appendChild(sendButton);
var endButton = el("button", { type: "button", class: "crmw-secondary", "data-testid": "crm-widget-end" }, "End chat");
var status = el("div", { class: "crmw-system", "data-testid": "crm-widget-status" });
[log, sendForm, endButton, status].forEach(function (node) { chatView.appendChild(node); });

function showError(message) { error.textContent = message || ""; }

function addMessage(message) {
  if (state.seen[message.id]) return;
  state.seen[message.id] = true;
  state.lastId = Math.max(state.lastId, message.id);
  var item = el("div", { class: "crmw-msg crmw-" + message.from, "data-testid": "crm-widget-message-" + message.from });
  if (message.from === "agent" && message.author) item.appendChild(el("span", { class: "crmw-author" }, message.author));
  item.appendChild(document.createTextNode(message.text));
  log.appendChild(item);
  log.scrollTop = log.scrollHeight;
}

function ended() {
  stopPolling();
  input.disabled = true;
  sendButton.disabled = true;
  endButton.disabled = true;
  status.textContent = "This chat has ended. Thank you!";
  try { sessionStorage.removeItem(STORE); } catch (e) { /* storage may be blocked */ }
}

function poll() {
  if (!state.chat || state.busy) return;
  state.busy = true;
  api("GET", "/chats/" + state.chat + "/messages?after=" + state.lastId).then(function (result) {
    state.busy = false;
    if (result.status === 404) { reset(); return; }
    if (!result.ok) return;
    (result.data.messages || []).forEach(addMessage);
    if (result.data.status === "closed") ended();
  }, function () { state.busy = false; });
}

function startPolling() {
  stopPolling();
  state.timer = setInterval(poll, CONFIG.pollMs || 2000);
  poll();
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function showChat() {
  body.textContent = "";
  body.appendChild(chatView);
  body.appendChild(error);
  startPolling();
}

function reset() {
  stopPolling();
  state.chat = null;
  state.token = null;
  state.lastId = 0;
  state.seen = {};
  log.textContent = "";
  try { sessionStorage.removeItem(STORE); } catch (e) { /* ignore */ }
  body.textContent = "";
  body.appendChild(form);
  body.appendChild(error);
}

form.addEventListener("submit", function (event) {
  event.preventDefault();
  showError("");
  startButton.disabled = true;
  api("POST", "/chats", { name: nameInput.value, email: emailInput.value, text: firstInput.value }).then(function (result) {
    startButton.disabled = false;
    if (!result.ok) { showError(result.data.error || "Could not start the chat."); return; }
    state.chat = result.data.chat_id;
    state.token = result.data.token;
    try { sessionStorage.setItem(STORE, JSON.stringify({ chat: state.chat, token: state.token })); } catch (e) { /* ignore */ }
    showChat();
  }, function () { startButton.disabled = false; showError("Could not reach the chat service."); });
});

sendForm.addEventListener("submit", function (event) {
  event.preventDefault();
  var text = input.value;
  if (!text.trim()) return;
  showError("");
  api("POST", "/chats/" + state.chat + "/messages", { text: text }).then(function (result) {
    if (!result.ok) { showError(result.data.error || "Message not sent."); return; }
    input.value = "";
    addMessage(result.data.message);
  }, function () { showError("Message not sent; check your connection."); });
});

endButton.addEventListener("click", function () {
  api("POST", "/chats/" + state.chat + "/end").then(function (result) {
    if (result.ok) { poll(); ended(); }
  });
});

button.addEventListener("click", function () {
  panel.hidden = !panel.hidden;
  if (!panel.hidden) (state.chat ? input : nameInput).focus();
});
close.addEventListener("click", function () { panel.hidden = true; });

function mount() {
  document.body.appendChild(button);
  document.body.appendChild(panel);
  var saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (e) { saved = null; }
  if (saved && saved.chat && saved.token) {
    state.chat = saved.chat;
    state.token = saved.token;
    showChat();
  } else {
    reset();
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
else mount();
