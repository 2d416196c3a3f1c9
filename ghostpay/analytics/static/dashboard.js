// The GhostPay dashboard: figures from /api/metrics/x402, the chart from /api/metrics/volume, the
// reputation table from /api/agents, and the live feed from /api/events (server-sent events).
// No libraries, no network beyond this server: it works offline.
"use strict";

const state = { period: 604800, decimals: {}, names: {}, labels: {}, refresh: null };
const $ = (selector) => document.querySelector(selector);
const metric = (name) => document.querySelector(`[data-metric="${name}"]`);

function short(address) { return address ? `${address.slice(0, 4)}…${address.slice(-4)}` : ""; }

// A mint by its token label on the indexed chain (the API names them), else its short address.
function token(mint) { return state.labels[mint] || short(mint); }

// Atomic units (an integer string) as an exact decimal string with the mint's decimals, as the API writes them.
function wholeTokens(atomic, decimals) {
  if (decimals === undefined || decimals === null) return `${atomic} atomic`;
  const digits = String(atomic).padStart(decimals + 1, "0");
  return decimals ? `${digits.slice(0, -decimals)}.${digits.slice(-decimals)}` : digits;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function agentCell(address, name) {
  const td = document.createElement("td");
  td.title = address;
  td.textContent = name || short(address);
  td.dataset.agent = address;
  return td;
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => { const tr = document.createElement("tr"); tr.append(...cells); return tr; }));
}

// With `ghost indexer serve --token-file`, the dashboard is opened as /?token=TOKEN: every request carries it.
const apiToken = new URLSearchParams(location.search).get("token");

function withToken(path) {
  return apiToken ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(apiToken)}` : path;
}

async function getJson(path) {
  const response = await fetch(path, apiToken ? { headers: { Authorization: `Bearer ${apiToken}` } } : {});
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function renderMetrics(m) {
  metric("success-rate").textContent = m.performance.success_rate === null ? "–" : `${m.performance.success_rate}%`;
  metric("error-rate").textContent = m.performance.error_rate === null ? "–" : `${m.performance.error_rate}%`;
  metric("rated").textContent = m.performance.rated;
  metric("payments-total").textContent = m.payments.total;
  metric("payments-successful").textContent = m.payments.successful;
  metric("payments-failed").textContent = m.payments.failed;
  metric("payments-pending").textContent = m.payments.pending;
  metric("failed-payments").textContent = m.payments.failed;
  metric("active-agents").textContent = m.agents.active;
  metric("response-ms").textContent = m.performance.average_response_ms === null ? "–"
    : `${m.performance.average_response_ms} ms`;
  for (const t of m.volume.by_token) {
    state.decimals[t.mint] = t.decimals;
    if (t.label) state.labels[t.mint] = t.label;
  }
  for (const e of m.agents.top_earners) if (e.label) state.labels[e.mint] = e.label;
  fillRows($("#volume tbody"), m.volume.by_token.map((t) => {
    const mint = cell(token(t.mint)); mint.title = t.mint; mint.dataset.mint = t.mint;
    return [mint, cell(t.payments, "num"), cell(t.total ?? `${t.total_atomic} atomic`, "num"),
      cell(t.average ?? `${t.average_atomic} atomic`, "num")];
  }));
  fillRows($("#earners tbody"), m.agents.top_earners.map((e) => {
    state.names[e.agent] = e.name;
    return [agentCell(e.agent, e.name), cell(e.calls, "num"),
      cell(`${e.earnings ?? e.earnings_atomic + " atomic"} ${token(e.mint)}`, "num")];
  }));
}

function renderChart(v) {
  Object.assign(state.labels, v.labels || {});
  const width = 600, height = 200, pad = 18, buckets = v.buckets;
  const counts = buckets.map((b) => b.payments);
  const top = Math.max(1, ...counts);
  const barWidth = (width - 2 * pad) / buckets.length;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  buckets.forEach((b, i) => {
    const h = (height - 2 * pad) * b.payments / top;
    const rect = document.createElementNS(svg.namespaceURI, "rect");
    rect.setAttribute("x", pad + i * barWidth + 1);
    rect.setAttribute("y", height - pad - h);
    rect.setAttribute("width", Math.max(1, barWidth - 2));
    rect.setAttribute("height", h);
    rect.dataset.payments = b.payments;
    const title = document.createElementNS(svg.namespaceURI, "title");
    const volume = Object.entries(b.volume).map(([mint, amount]) => `${amount ?? b.volume_atomic[mint]} ${token(mint)}`);
    title.textContent = `${new Date(b.start * 1000).toISOString().slice(0, 16).replace("T", " ")}: ` +
      `${b.payments} payments${volume.length ? ", " + volume.join(", ") : ""}`;
    rect.append(title);
    svg.append(rect);
  });
  const label = document.createElementNS(svg.namespaceURI, "text");
  label.setAttribute("x", pad); label.setAttribute("y", 12);
  label.textContent = `max ${top} payments per ${Math.round(v.bucket_seconds / 60)} min`;
  svg.append(label);
  const day = (t) => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");
  for (const [x, anchor, t] of [[pad, "start", v.period.start], [width - pad, "end", v.period.end]]) {
    const axis = document.createElementNS(svg.namespaceURI, "text");
    axis.setAttribute("x", x); axis.setAttribute("y", height - 4); axis.setAttribute("text-anchor", anchor);
    axis.textContent = `${day(t)} UTC`;
    svg.append(axis);
  }
  $("#chart").replaceChildren(svg);
}

// What trusted money says (paid calls, distinct payers, volume, days: x402 in trusted mints) and the trust score.
function evidenceText(e) {
  const t = e.x402.trusted;
  const volume = t.volume.map((v) => `${v.volume ?? v.volume_atomic + " atomic"} ${v.label || short(v.mint)}`).join(", ");
  return `${t.calls} calls · ${e.trusted_payers} payers${volume ? " · " + volume : ""}${e.days ? ` · ${e.days} d` : ""}`;
}

function renderReputation(page) {
  fillRows($("#reputation tbody"), page.items.map((a) => {
    state.names[a.address] = a.name;
    const trust = a.evidence.trust ? (a.evidence.trust.score / 100).toFixed(2) : "–";
    return [agentCell(a.address, a.name), cell(a.reputation.tier), cell(`${a.reputation.percent}%`, "num"),
      cell(a.x402_total_calls, "num"), cell(evidenceText(a.evidence)), cell(trust, "num")];
  }));
}

async function refresh() {
  try {
    const [m, v, r] = await Promise.all([
      getJson(`/api/metrics/x402?period=${state.period}`),
      getJson(`/api/metrics/volume?period=${state.period}&buckets=24`),
      getJson("/api/agents?sort=reputation&limit=10&x402_enabled=true")]);
    renderMetrics(m); renderChart(v); renderReputation(r);
    $("#status").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (error) {
    $("#status").textContent = `error: ${error.message}`;
  }
}

function refreshSoon() {  // many payments in a burst: one refresh
  clearTimeout(state.refresh);
  state.refresh = setTimeout(refresh, 300);
}

function addPayment(event, fresh) {
  const p = JSON.parse(event.data);
  const li = document.createElement("li");
  li.dataset.signature = p.signature;
  li.dataset.eventId = p.id;
  if (fresh) li.className = "new";
  const when = document.createElement("span");
  when.className = "muted";
  when.textContent = new Date(p.timestamp * 1000).toISOString().slice(5, 19).replace("T", " ");
  const who = document.createElement("span");
  who.textContent = state.names[p.agent] || short(p.agent);
  who.title = p.agent;
  const amount = document.createElement("span");
  amount.className = "good";
  amount.textContent = `${wholeTokens(p.data.amount, state.decimals[p.data.mint])} ${token(p.data.mint)}`;
  amount.title = p.data.mint;
  li.append(when, who, amount);
  $("#feed").prepend(li);
  while ($("#feed").children.length > 50) $("#feed").lastChild.remove();
}

async function follow() {
  const status = await getJson("/api/status");
  const newest = status.newest_event_id || 0;  // events up to it are history (shown, no refresh)
  const source = new EventSource(withToken(`/api/events?names=X402PaymentRecorded,FeedbackSubmitted&after=${Math.max(0, newest - 200)}`));
  const fresh = (event) => Number(event.lastEventId) > newest;
  source.addEventListener("open", () => $("#live").classList.add("on"));
  source.addEventListener("error", () => $("#live").classList.remove("on"));
  source.addEventListener("X402PaymentRecorded", (event) => {
    addPayment(event, fresh(event));
    if (fresh(event)) refreshSoon();
  });
  source.addEventListener("FeedbackSubmitted", (event) => { if (fresh(event)) refreshSoon(); });
}

for (const button of document.querySelectorAll("#periods button")) {
  button.addEventListener("click", () => {
    document.querySelectorAll("#periods button").forEach((b) => b.classList.toggle("on", b === button));
    state.period = Number(button.dataset.period);
    refresh();
  });
}
refresh().then(follow);
