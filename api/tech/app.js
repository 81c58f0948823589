// The technician's phone page: sign in, my open work orders by time left, one work order and what to do next.
//
// No framework and no build step: the DOM is built with createElement and textContent (never innerHTML, so a title
// or a note cannot inject markup), and there is nothing inline, as the API's Content-Security-Policy requires.
// Views are chosen by the URL fragment (#/ the list, #/wo/<id> one work order), so the phone's back button works.

const API = "/api/v1";
const TOKEN_KEY = "facmon.tech.token";
const USER_KEY = "facmon.tech.user";
const REFRESH_MS = 20_000;
const SOON_S = 5 * 60; // amber under five minutes left
const LIST_QUERY = "mine=true&status=open&status=acknowledged&status=on_site&sort=urgency&limit=100";

// The transitions a technician makes from this page; the rest of next_statuses (close, cancel) are the office's.
const ACTIONS = { acknowledged: "Acknowledge", on_site: "On site", resolved: "Resolve" };
const STATUS = {
  open: "Open",
  acknowledged: "Acknowledged",
  on_site: "On site",
  resolved: "Resolved",
  closed: "Closed",
  cancelled: "Cancelled",
};
const MILESTONE = { acknowledged: "Acknowledge", on_site: "Be on site", resolved: "Resolve" };
const PRIORITY = { emergency: "Emergency", urgent: "Urgent" };
const EVENT = {
  opened: "Opened",
  recurred: "Fault again",
  fault_cleared: "Fault cleared by the device",
  transition: "Status",
  sla_breached: "Deadline missed",
  breach_withdrawn: "Deadline met after all (missed withdrawn)",
  late_evidence: "Arrival evidence received late",
  follow_up: "Follow-up",
  note: "Note",
  assigned: "Assigned",
  notified: "Notified",
  escalated: "Escalated",
  silenced: "Alerts silenced",
};

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: readJson(sessionStorage.getItem(USER_KEY)),
  offsetMs: null, // server clock minus phone clock, from the Date header of the answers
  detailId: null,
  detail: null,
  seq: 0, // answers to superseded requests are dropped
  busy: false,
  loginBlockedUntil: 0,
};

function readJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

// --- the API ------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, title, detail, retryAfter = null) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  get readable() {
    if (this.title && this.detail && this.detail !== this.title) return `${this.title}: ${this.detail}`;
    return this.detail || this.title || `The server answered ${this.status}.`;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const sent = Date.now();
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    setOffline(true);
    throw new ApiError(0, "No connection", "The server could not be reached. Check the signal and try again.");
  }
  setOffline(false);
  noteServerTime(response.headers.get("Date"), sent, Date.now());
  const text = await response.text();
  const data = readJson(text);
  if (response.ok) return data;
  const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  const error = new ApiError(
    response.status,
    data?.title ?? response.statusText,
    typeof data?.detail === "string" ? data.detail : "",
    Number.isFinite(retry) ? retry : null,
  );
  if (response.status === 401 && path !== "/auth/login") {
    signOut("Your session has ended. Sign in again.");
  }
  throw error;
}

// The countdown runs on the phone's clock corrected by the server's: a phone a few minutes off must not show a
// deadline as met or missed when it is not. Date has whole seconds, so the server's time was in [Date, Date + 1 s).
function noteServerTime(header, sent, received) {
  const server = Date.parse(header ?? "");
  if (!Number.isFinite(server)) return;
  const offset = server + 500 - (sent + received) / 2;
  if (state.offsetMs === null || Math.abs(offset - state.offsetMs) > 2000) state.offsetMs = offset;
  else state.offsetMs += (offset - state.offsetMs) * 0.2;
}

function serverNow() {
  return Date.now() + (state.offsetMs ?? 0);
}

function setOffline(offline) {
  $("offline").hidden = !offline;
}

// --- small DOM helpers --------------------------------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function show(id, message, kind = "error") {
  const node = $(id);
  node.textContent = message ?? "";
  node.hidden = !message;
  if (kind) node.className = `message message-${kind}`;
}

function facts(dl, rows) {
  dl.replaceChildren();
  for (const [label, value] of rows) {
    if (value === undefined || value === null || value === "") continue;
    const dd = el("dd");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = String(value);
    dl.append(el("dt", "", label), dd);
  }
}

// A technician as {id, name, phone} (people.*), with a link to call them.
function person(ref, you) {
  const span = el("span", "person");
  const name = ref.name || ref.id;
  span.append(el("span", "person-name", you ? `${name} (you)` : name));
  if (ref.phone && !you) {
    const call = el("a", "call", `Call ${ref.phone}`);
    call.href = `tel:${ref.phone.replace(/[^+0-9]/g, "")}`;
    call.setAttribute("aria-label", `Call ${name}, ${ref.phone}`);
    span.append(call);
  }
  return span;
}

function people(refs, me) {
  if (!refs.length) return null;
  const box = el("span", "people");
  for (const ref of refs) box.append(person(ref, me && ref.id === me));
  return box;
}

// --- time -----------------------------------------------------------------------------------------------------------

function capitalized(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function duration(totalSeconds) {
  const s = Math.max(0, totalSeconds);
  const days = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (days > 0) return `${days} d ${h} h`;
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${pad(m)}:${pad(sec)}`;
}

// A deadline as text and urgency, against the server's time.
function countdown(dueAt) {
  const left = (Date.parse(dueAt) - serverNow()) / 1000;
  if (!Number.isFinite(left)) return { text: "", level: "ok" };
  if (left > 0) {
    const s = Math.ceil(left);
    return { text: `${duration(s)} left`, level: s <= SOON_S ? "soon" : "ok" };
  }
  return { text: `${duration(Math.floor(-left))} overdue`, level: "breached" };
}

// <p class="countdown" data-due=...><span>Be on site</span> <span>14:59 left</span></p>, redrawn every second.
function countdownNode(tag, deadline, extraClass = "") {
  const node = el(tag, `countdown ${extraClass}`.trim());
  fillCountdown(node, deadline);
  return node;
}

function fillCountdown(node, deadline) {
  if (!deadline || !deadline.due_at) {
    delete node.dataset.due;
    node.className = node.className.replace(/\bis-\w+/g, "").trim();
    node.replaceChildren(el("span", "countdown-label", "No deadline running"));
    return;
  }
  node.dataset.due = deadline.due_at;
  const label = MILESTONE[deadline.milestone] ?? deadline.name ?? "Deadline";
  node.replaceChildren(el("span", "countdown-label", label), document.createTextNode(" "), el("span", "countdown-time"));
  tickNode(node);
}

function tickNode(node) {
  const { text, level } = countdown(node.dataset.due);
  const time = node.querySelector(".countdown-time");
  if (time && time.textContent !== text) time.textContent = text;
  for (const name of ["ok", "soon", "breached"]) node.classList.toggle(`is-${name}`, name === level);
}

function tick() {
  for (const node of document.querySelectorAll("[data-due]")) tickNode(node);
  if (state.loginBlockedUntil) {
    const wait = Math.ceil((state.loginBlockedUntil - Date.now()) / 1000);
    if (wait > 0) {
      show("login-error", `Too many attempts. Wait ${wait} s, then try again.`);
    } else {
      state.loginBlockedUntil = 0;
      $("login-submit").disabled = false;
      show("login-error", "");
    }
  }
}

function timeZoneOf(wo) {
  const zone = wo?.site_timezone ?? wo?.timezone ?? null;
  if (!zone) return null;
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: zone });
    return zone;
  } catch {
    return null;
  }
}

function formatTime(iso, zone) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const options = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (zone) options.timeZone = zone;
  return new Intl.DateTimeFormat(undefined, options).format(at);
}

// --- views ----------------------------------------------------------------------------------------------------------

function showView(name) {
  for (const view of ["login", "list", "detail"]) $(`${view}-view`).hidden = view !== name;
  const signedIn = name !== "login";
  $("logout").hidden = !signedIn;
  $("who").hidden = !signedIn;
  $("who").textContent = signedIn && state.user ? state.user.display_name || state.user.username : "";
}

function route() {
  state.seq += 1;
  if (!state.token) {
    state.detailId = null;
    showView("login");
    return;
  }
  const match = /^#\/wo\/(\d+)$/.exec(location.hash);
  if (match) {
    const id = Number(match[1]);
    if (state.detailId !== id) {
      state.detailId = id;
      state.detail = null;
      $("detail").hidden = true;
      $("resolve-form").hidden = true;
      $("resolve-note").value = "";
      $("note-text").value = "";
      show("detail-error", "");
      show("detail-ok", "", "ok");
    }
    showView("detail");
    loadDetail();
  } else {
    state.detailId = null;
    showView("list");
    loadList();
  }
}

function refresh() {
  if (!state.token || document.visibilityState !== "visible") return;
  if (state.detailId !== null) loadDetail();
  else loadList();
}

// --- sign in and out ----------------------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  if (state.loginBlockedUntil) return;
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    show("login-error", "Enter your username and password.");
    return;
  }
  $("login-submit").disabled = true;
  show("login-error", "");
  try {
    const answer = await api("POST", "/auth/login", { username, password });
    state.token = answer.access_token;
    state.user = answer.user;
    sessionStorage.setItem(TOKEN_KEY, state.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(state.user));
    $("password").value = "";
    $("login-submit").disabled = false;
    if (location.hash !== "#/") location.hash = "#/";
    else route();
  } catch (error) {
    if (error.status === 429) {
      state.loginBlockedUntil = Date.now() + (error.retryAfter ?? 30) * 1000;
      tick();
      return; // the button comes back when the wait is over
    }
    $("login-submit").disabled = false;
    if (error.status === 401) show("login-error", "Wrong username or password.");
    else show("login-error", error.readable);
    $("password").select();
  }
}

function signOut(message) {
  state.token = null;
  state.user = null;
  state.detail = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  $("list").replaceChildren();
  route();
  show("login-error", message ?? "", message ? "info" : "error");
}

async function logout() {
  try {
    await api("POST", "/auth/logout");
  } catch {
    // Signed out here either way; an expired token is as good as a revoked one.
  }
  signOut("Signed out.");
}

// --- my open work orders ------------------------------------------------------------------------------------------

async function loadList() {
  const seq = state.seq;
  try {
    const page = await api("GET", `/work-orders?${LIST_QUERY}`);
    if (seq !== state.seq) return;
    renderList(page.items ?? []);
    show("list-error", "");
    $("list-updated").textContent = `Updated ${formatTime(new Date().toISOString(), null)}`;
  } catch (error) {
    if (seq === state.seq && error.status !== 401) show("list-error", error.readable);
  }
}

function renderList(items) {
  const list = $("list");
  const focused = document.activeElement?.closest?.("[data-id]")?.dataset.id;
  list.replaceChildren(...items.map(card));
  $("list-empty").hidden = items.length > 0;
  if (focused) list.querySelector(`[data-id="${CSS.escape(focused)}"]`)?.focus();
}

function card(wo) {
  const item = el("li", `card priority-${wo.priority}`);
  const link = el("a", "card-link");
  link.href = `#/wo/${wo.id}`;
  link.dataset.id = String(wo.id);
  const tags = el("span", "tags");
  tags.append(el("span", `tag tag-${wo.priority}`, PRIORITY[wo.priority] ?? wo.priority));
  tags.append(el("span", "tag tag-status", STATUS[wo.status] ?? wo.status));
  if (!wo.assignee) tags.append(el("span", "tag tag-free", "Unassigned"));
  link.append(
    tags,
    el("span", "card-title", wo.title),
    el("span", "card-where", [wo.site, wo.building, wo.device].filter(Boolean).join(" · ")),
    countdownNode("span", wo.next_deadline),
  );
  item.append(link);
  return item;
}

// --- one work order -------------------------------------------------------------------------------------------------

async function loadDetail() {
  const seq = state.seq;
  const id = state.detailId;
  try {
    const wo = await api("GET", `/work-orders/${id}`);
    if (seq !== state.seq || id !== state.detailId) return;
    renderDetail(wo);
  } catch (error) {
    if (seq === state.seq && error.status !== 401) show("detail-error", error.readable);
  }
}

function renderDetail(wo) {
  state.detail = wo;
  const zone = timeZoneOf(wo);
  $("detail").hidden = false;
  $("detail").classList.toggle("is-emergency", wo.priority === "emergency");
  const priority = $("d-priority");
  priority.textContent = PRIORITY[wo.priority] ?? wo.priority;
  priority.className = `tag tag-${wo.priority}`;
  $("d-status").textContent = STATUS[wo.status] ?? wo.status;
  $("detail-title").textContent = wo.title;
  fillCountdown($("d-countdown"), wo.next_deadline);

  renderActions(wo);

  facts($("d-where"), [
    ["Site", wo.site_name ? `${wo.site_name} (${wo.site})` : wo.site],
    ["Building", wo.building_name ? `${wo.building_name} (${wo.building})` : wo.building],
    ["Device", `${wo.device} (${wo.kind})`],
  ]);
  facts($("d-what"), [
    ["Fault", wo.fault],
    ["Priority", PRIORITY[wo.priority] ?? wo.priority],
    ["Detected", formatTime(wo.detected_at, zone)],
    ["Occurrences", wo.occurrences > 1 ? `${wo.occurrences} (last ${formatTime(wo.last_occurrence_at, zone)})` : "1"],
    ["Fault cleared", wo.fault_cleared_at ? formatTime(wo.fault_cleared_at, zone) : null],
  ]);

  const clocks = $("d-clocks");
  clocks.replaceChildren();
  for (const c of wo.sla?.clocks ?? []) {
    const row = el("li", `clock clock-${c.state}`);
    const label = `${capitalized(c.name.replaceAll("_", " "))}, due ${formatTime(c.due_at, zone)}`;
    row.append(el("span", "clock-name", label));
    if (c.state === "pending") row.append(countdownNode("span", { due_at: c.due_at, milestone: null, name: "" }));
    else if (c.state === "met") row.append(el("span", "clock-state", `met ${formatTime(c.met_at, zone)}`));
    else if (c.state === "breached") {
      const late = c.overdue_s === null || c.overdue_s === undefined ? "" : ` by ${duration(Math.floor(c.overdue_s))}`;
      row.append(el("span", "clock-state is-breached", `missed${late}`));
    } else row.append(el("span", "clock-state", c.state));
    clocks.append(row);
  }
  if (!clocks.children.length) clocks.append(el("li", "clock", "No deadlines for this work order."));

  const me = state.user?.technician ?? null;
  const who = wo.people ?? {};
  const assignee = who.assignee ?? (wo.assignee ? { id: wo.assignee, name: null, phone: null } : null);
  const acted = (who.acted ?? [])
    .filter((a) => a.actor !== assignee?.id)
    .map((a) => a.technician ?? { id: a.actor, name: null, phone: null });
  facts($("d-people"), [
    ["Assigned to", assignee ? person(assignee, me && assignee.id === me) : "Nobody yet"],
    ["On call now", people(who.on_call ?? [], me) ?? "—"],
    ["Also worked on it", people(acted, me)],
  ]);

  $("d-tz").textContent = zone ? `(times in ${zone})` : "(times on this phone's clock)";
  const timeline = $("d-timeline");
  timeline.replaceChildren(...[...(wo.timeline ?? [])].reverse().map((entry) => timelineEntry(entry, zone)));
}

function renderActions(wo) {
  const box = $("d-actions");
  box.replaceChildren();
  const technician = state.user?.technician;
  if (!wo.assignee && technician && ["open", "acknowledged", "on_site"].includes(wo.status)) {
    const take = el("button", "btn btn-primary", "Take it");
    take.type = "button";
    take.addEventListener("click", () => act(`/work-orders/${wo.id}/assign`, { technician }, "You have it now."));
    box.append(take);
  }
  for (const to of wo.next_statuses ?? []) {
    if (!(to in ACTIONS)) continue;
    const button = el("button", `btn btn-action btn-${to.replace("_", "-")}`, ACTIONS[to]);
    button.type = "button";
    if (to === "resolved") {
      button.setAttribute("aria-controls", "resolve-form");
      button.setAttribute("aria-expanded", String(!$("resolve-form").hidden));
      button.addEventListener("click", () => {
        $("resolve-form").hidden = false;
        button.setAttribute("aria-expanded", "true");
        $("resolve-note").focus();
      });
    } else {
      button.addEventListener("click", () => transition(wo.id, to));
    }
    box.append(button);
  }
  if (!wo.next_statuses?.some((to) => to === "resolved")) $("resolve-form").hidden = true;
  for (const button of box.querySelectorAll("button")) button.disabled = state.busy;
  if (!box.children.length) {
    const done = ["resolved", "closed", "cancelled"].includes(wo.status);
    box.append(el("p", "hint", done ? "Nothing left to do here." : "Nothing for you to do on this one."));
  }
}

function timelineEntry(entry, zone) {
  const item = el("li", `event event-${entry.type}`);
  const head = el("p", "event-head");
  head.append(el("time", "event-time", formatTime(entry.at, zone)));
  head.querySelector("time").dateTime = entry.at;
  let what = EVENT[entry.type] ?? entry.type;
  if (entry.type === "transition" && entry.status) what = `→ ${STATUS[entry.status] ?? entry.status}`;
  if (entry.type === "assigned" && entry.detail?.to) what = `Assigned to ${entry.detail.to}`;
  head.append(document.createTextNode(" "), el("strong", "event-what", what));
  item.append(head);
  const by = [entry.actor, entry.source ? `via ${entry.source.replaceAll("_", " ")}` : null].filter(Boolean).join(" ");
  if (by) item.append(el("p", "event-by", by));
  if (entry.note) item.append(el("p", "event-note", entry.note));
  return item;
}

function setBusy(busy) {
  state.busy = busy;
  for (const button of document.querySelectorAll("#detail button")) button.disabled = busy;
}

async function act(path, body, done) {
  if (state.busy) return false;
  const id = state.detailId;
  setBusy(true);
  show("detail-error", "");
  show("detail-ok", "", "ok");
  try {
    const answer = await api("POST", path, body);
    if (id !== state.detailId) return true;
    if (answer && answer.id === id && answer.timeline) renderDetail(answer);
    show("detail-ok", done, "ok");
    setBusy(false);
    await loadDetail(); // the assignee, the people and the deadlines as the server has them now
    return true;
  } catch (error) {
    if (error.status !== 401) show("detail-error", error.readable);
    return false;
  } finally {
    setBusy(false);
  }
}

async function transition(id, to, note) {
  const body = note ? { to, note } : { to };
  const labels = { acknowledged: "Acknowledged.", on_site: "Marked on site.", resolved: "Resolved. Thank you." };
  return act(`/work-orders/${id}/transitions`, body, labels[to]);
}

async function resolve(event) {
  event.preventDefault();
  const note = $("resolve-note").value.trim();
  if (!note) {
    show("detail-error", "Say what was wrong and what you did before resolving.");
    $("resolve-note").focus();
    return;
  }
  if (await transition(state.detailId, "resolved", note)) {
    $("resolve-note").value = "";
    $("resolve-form").hidden = true;
  }
}

async function addNote(event) {
  event.preventDefault();
  const note = $("note-text").value.trim();
  if (!note) {
    show("detail-error", "Write the note first.");
    $("note-text").focus();
    return;
  }
  if (await act(`/work-orders/${state.detailId}/notes`, { note }, "Note added.")) $("note-text").value = "";
}

// --- start ----------------------------------------------------------------------------------------------------------

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
$("refresh").addEventListener("click", () => loadList());
$("resolve-form").addEventListener("submit", resolve);
$("resolve-cancel").addEventListener("click", () => {
  $("resolve-form").hidden = true;
  $("d-actions").querySelector(".btn-resolved")?.setAttribute("aria-expanded", "false");
});
$("note-form").addEventListener("submit", addNote);
window.addEventListener("hashchange", route);
window.addEventListener("focus", refresh);
document.addEventListener("visibilitychange", refresh);
setInterval(refresh, REFRESH_MS);
setInterval(tick, 1000);
route();
