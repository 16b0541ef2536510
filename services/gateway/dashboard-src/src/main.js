// The Gateway dashboard: polls the public GET API every few seconds and redraws each section.
import { API, Unauthorized, anonymousToken, get, storeToken, storedToken } from "./api.js";
import { drawGraph, graphElements } from "./graph.js";

const POLL_MS = 3000;
const STATES = ["QUEUED", "PROCESSING", "COMPLETED", "FAILED"];
const anonymous = document.body.dataset.access === "anonymous";
let selected = "";
let drawnGraph = "";
let cy = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function short(state) {
  return String(state || "").replace(/^[A-Z]+_STATE_/, "");
}

function table(headers, rows) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows),
  );
}

function section(id, content) {
  $(id).replaceChildren(content);
}

const QUEUE_STATES = ["ready", "leased", "delayed", "dead"];

function stateCell(state) {
  const text = short(state) || "UNKNOWN";
  return el("td", { className: `state ${text.toLowerCase()}` }, text);
}

// The Gateway itself (GetHealth answers even while it boots), then each backend (GetOverview).
function renderHealth(health, overview) {
  const h = (health && health.health) || {};
  const rows = [
    el(
      "tr",
      { "data-service": h.service || "gateway" },
      el("td", {}, h.service || "gateway"),
      el("td", {}, "service"),
      stateCell(h.state),
      el("td", {}, h.ready ? "ready" : "not ready"),
    ),
    ...((overview && overview.backends) || []).map((b) =>
      el(
        "tr",
        { "data-backend": b.name },
        el("td", {}, b.name),
        el("td", {}, b.adapter || ""),
        stateCell(b.state),
        el("td", {}, ""),
      ),
    ),
  ];
  section("health-body", table(["name", "adapter", "state", ""], rows));
}

function renderWorkQueue(overview) {
  const counts = (overview && overview.workQueue) || {};
  section(
    "queue-body",
    el(
      "ul",
      { className: "counts" },
      ...QUEUE_STATES.map((s) =>
        el(
          "li",
          { "data-queue-state": s, className: s === "dead" && Number(counts[s] || 0) > 0 ? "state failed" : "" },
          el("b", {}, counts[s] || 0),
          ` ${s === "dead" ? "dead letters" : s}`,
        ),
      ),
    ),
  );
}

// Which strategies hold each node id: a node shared by several is computed once.
function sharingMap(strategies) {
  const sharing = new Map();
  for (const s of strategies) {
    for (const node of (s.dag && s.dag.nodes) || []) {
      const holders = sharing.get(node.nodeId) || [];
      holders.push(s.name || s.strategyId);
      sharing.set(node.nodeId, holders);
    }
  }
  return sharing;
}

function renderStrategies(strategies) {
  const rows = strategies.map((s) =>
    el(
      "tr",
      { "data-strategy-id": s.strategyId, "data-state": short(s.state) },
      el(
        "td",
        {},
        el("button", { type: "button", className: "link", onclick: () => select(s.strategyId) }, s.name || "(unnamed)"),
      ),
      el("td", { className: "mono" }, s.strategyId),
      el("td", { className: `state ${short(s.state).toLowerCase()}` }, short(s.state)),
      el("td", {}, (s.diff && s.diff.newNodeIds ? s.diff.newNodeIds.length : 0)),
      el("td", {}, (s.diff && s.diff.reusedNodeIds ? s.diff.reusedNodeIds.length : 0)),
      el("td", {}, s.updatedAt || s.createdAt || ""),
    ),
  );
  section(
    "strategies-body",
    strategies.length
      ? table(["name", "strategy id", "state", "new", "reused", "updated"], rows)
      : el("p", { className: "empty" }, "no strategies yet"),
  );
  const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const s of strategies) counts[short(s.state)] = (counts[short(s.state)] || 0) + 1;
  section(
    "work-body",
    el(
      "ul",
      { className: "counts" },
      ...STATES.map((s) =>
        el("li", { "data-state": s, className: `state ${s.toLowerCase()}` }, el("b", {}, counts[s]), ` ${s}`),
      ),
    ),
  );
}

// Active alerts: the latest AlertRaised per dedupe key, kept while it is FIRING.
function renderAlerts(events) {
  const latest = new Map();
  for (const event of events) {
    const alert = event.alertRaised;
    if (!alert) continue;
    const key = alert.dedupeKey || `${alert.name}:${alert.targetId}`;
    const seen = latest.get(key);
    if (!seen || (event.time || "") >= (seen.time || "")) latest.set(key, { ...alert, time: event.time });
  }
  const active = [...latest.values()].filter((a) => short(a.state) !== "RESOLVED");
  section(
    "alerts-body",
    active.length
      ? table(
          ["level", "alert", "target", "message", "since"],
          active.map((a) =>
            el(
              "tr",
              { "data-alert": a.name },
              el("td", {}, String(a.level || "").replace(/^ALERT_LEVEL_/, "")),
              el("td", {}, a.name),
              el("td", { className: "mono" }, a.targetId || ""),
              el("td", {}, a.message || ""),
              el("td", {}, a.time || ""),
            ),
          ),
        )
      : el("p", { className: "empty" }, "no active alerts"),
  );
}

async function renderQueuesByTag(strategies) {
  // One lookup per (tags, interval) a tag-query node of a known strategy asks for.
  const lookups = new Map();
  for (const s of strategies) {
    for (const node of (s.dag && s.dag.nodes) || []) {
      const query = node.spec && node.spec.tagQuery;
      if (!query || !query.tags || !query.tags.length) continue;
      const interval = query.interval || (node.spec && node.spec.interval) || 0;
      lookups.set(`${query.tags.join(",")}@${interval}`, { tags: query.tags, interval });
    }
  }
  const rows = [];
  for (const { tags, interval } of lookups.values()) {
    const answer = await get(API.queuesByTag, { tags, interval });
    for (const q of answer.queues || []) {
      rows.push(
        el(
          "tr",
          {},
          el("td", {}, tags.join(", ")),
          el("td", {}, interval),
          el("td", { className: "mono" }, q.queue),
          el("td", {}, (q.tags || []).join(", ")),
        ),
      );
    }
  }
  section(
    "queues-body",
    rows.length
      ? table(["tags asked", "interval", "queue", "queue tags"], rows)
      : el("p", { className: "empty" }, "no tag queries in the listed strategies"),
  );
}

async function renderGraph(strategies, sharing) {
  const strategy = strategies.find((s) => s.strategyId === selected) || strategies[0];
  if (!strategy) {
    section("graph-title", "no strategy to show");
    return;
  }
  selected = strategy.strategyId;
  const status = await get(API.strategyStatus.replace("{strategy_id}", encodeURIComponent(selected)));
  const elements = graphElements(strategy, status, sharing);
  const fingerprint = JSON.stringify(elements);
  $("graph-title").textContent = `${strategy.name || strategy.strategyId} (${short(strategy.state)})`;
  $("graph").dataset.strategyId = selected;
  const nodes = elements.filter((e) => !e.data.source);
  section(
    "graph-nodes",
    table(
      ["node", "state", "topic", "shared by"],
      nodes.map((n) =>
        el(
          "tr",
          { "data-node-id": n.data.id, "data-node-state": n.data.state },
          el("td", {}, n.data.label),
          el("td", { className: `node ${n.data.state}` }, n.data.state),
          el("td", { className: "mono" }, n.data.topic),
          el("td", {}, n.data.sharedBy),
        ),
      ),
    ),
  );
  if (fingerprint === drawnGraph && cy) return; // unchanged: keep the user's zoom and pan
  drawnGraph = fingerprint;
  if (cy) cy.destroy();
  cy = drawGraph($("graph"), elements, (data) => {
    $("graph-hover").textContent = data
      ? `${data.label}: ${data.state}; topic ${data.topic || "-"}; shared by ${data.sharedBy || "-"}`
      : "hover a node for its topic and the strategies sharing it";
  });
}

function select(strategyId) {
  selected = strategyId;
  refresh();
}

let refreshing = false;

async function refresh() {
  if (refreshing) return; // a slow answer must not stack polls behind it
  refreshing = true;
  try {
    const [health, overview, list, events] = await Promise.all([
      get(API.health),
      get(API.overview),
      get(API.strategies, { include_dag: "true", "page.page_size": "100" }),
      get(API.events, { types: "qmtl.ops.alert_raised", "page.page_size": "200" }),
    ]);
    const strategies = list.strategies || [];
    renderHealth(health, overview);
    renderWorkQueue(overview);
    renderStrategies(strategies);
    renderAlerts(events.events || []);
    await renderGraph(strategies, sharingMap(strategies));
    await renderQueuesByTag(strategies);
    $("updated").textContent = `updated ${new Date().toISOString()}`;
    $("updated").dataset.loaded = "true";
    $("error").textContent = "";
  } catch (error) {
    if (error instanceof Unauthorized) {
      storeToken("");
      if (anonymous) await anonymousToken().catch(() => {});
      else $("login").hidden = false;
    }
    $("error").textContent = String(error.message || error);
  } finally {
    refreshing = false;
  }
}

function start() {
  const form = $("login");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    storeToken($("token").value.trim());
    $("token").value = "";
    form.hidden = true;
    refresh();
  });
  form.hidden = anonymous || Boolean(storedToken());
  const begin = anonymous && !storedToken() ? anonymousToken() : Promise.resolve();
  begin.catch((error) => ($("error").textContent = String(error))).finally(() => {
    refresh();
    setInterval(refresh, POLL_MS);
  });
}

start();
