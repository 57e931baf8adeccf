"use strict";
const KEY = "rampart-admin-token";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(KEY);
let events = [];
let lastId = 0;
let previous = null;

function headers(extra) { return Object.assign({ "Authorization": "Bearer " + token }, extra || {}); }
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text == null ? "" : String(text); if (cls) td.className = cls; return td; }

function renderFeed() {
  const sev = $("f-severity").value, kind = $("f-kind").value.trim();
  const body = $("feed"); body.replaceChildren();
  for (const e of events.slice().reverse()) {
    if (sev && e.severity !== sev) continue;
    if (kind && !e.kind.includes(kind)) continue;
    const tr = document.createElement("tr");
    tr.dataset.kind = e.kind;
    tr.append(cell(e.time.slice(0, 19).replace("T", " ")), cell(e.severity, "sev sev-" + e.severity), cell(e.kind), cell(e.node || (e.peer ? e.source + " via " + e.peer : e.source)), cell(e.principal), cell(e.service), cell(e.reason));
    body.append(tr);
  }
}

function addEvent(e) {
  if (e.id <= lastId) return;
  lastId = e.id; events.push(e);
  if (events.length > 500) events.shift();
  renderFeed();
}

async function follow() {
  // fetch, not EventSource: the token must travel in a header, never in the URL.
  while (token) {
    try {
      const resp = await fetch("/_rampart/events", { headers: headers({ "Accept": "text/event-stream", "Last-Event-ID": String(lastId) }) });
      if (resp.status === 401 || resp.status === 403) { signOut("this token is not an administrator's"); return; }
      $("status").textContent = "live";
      const reader = resp.body.getReader(); const decoder = new TextDecoder(); let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
          const data = chunk.split("\n").filter(l => l.startsWith("data: ")).map(l => l.slice(6)).join("\n");
          if (data) addEvent(JSON.parse(data));
        }
      }
    } catch (err) { $("status").textContent = "reconnecting…"; }
    await new Promise(r => setTimeout(r, 1000));
  }
}

function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^rampart_requests_total\{service="([^"]*)",code="(\d+)"\} (\d+)/);
    if (!m) continue;
    const s = out[m[1]] || (out[m[1]] = { total: 0, errors: 0 });
    s.total += Number(m[3]); if (Number(m[2]) >= 500) s.errors += Number(m[3]);
  }
  return out;
}

async function poll() {
  while (token) {
    try {
      const st = await fetch("/_rampart/status", { headers: headers() });
      if (st.ok) {
        const s = await st.json(); const body = $("nodes"); body.replaceChildren();
        for (const n of s.nodes) { const tr = document.createElement("tr"); tr.append(cell(n.name, "up"), cell(n.addr), cell(n.services.join(", "))); body.append(tr); }
      }
      const pr = await fetch("/_rampart/federation/peers", { headers: headers() });
      if (pr.ok) {
        const body = $("peers"); body.replaceChildren();
        for (const p of (await pr.json()).peers) {
          const tr = document.createElement("tr");
          const age = p.catalog_age_ms == null ? "never" : (p.catalog_age_ms / 1000).toFixed(1) + " s ago";
          tr.append(cell(p.name), cell(p.up ? "up" : "down", p.up ? "up" : "down"), cell(age),
            cell(p.imports.join(", ")), cell(p.exports.join(", ")));
          body.append(tr);
        }
      }
      const jb = await fetch("/_rampart/jobs", { headers: headers() });
      if (jb.ok) {
        const body = $("jobs"); body.replaceChildren();
        for (const j of (await jb.json()).jobs) {
          const tr = document.createElement("tr"); tr.dataset.job = j.id;
          const bar = document.createElement("progress"); bar.max = j.tasks.total; bar.value = j.tasks.done;
          const progress = cell(j.tasks.done + "/" + j.tasks.total + " "); progress.prepend(bar);
          const cls = j.state === "done" ? "up" : j.state === "failed" ? "down" : "";
          tr.append(cell(j.id.slice(0, 8)), cell(j.owner), cell(j.state, cls), progress, cell(j.nodes.join(", ")));
          if (j.reason) tr.title = j.reason;
          body.append(tr);
        }
      }
      const mt = await fetch("/_rampart/metrics", { headers: headers() });
      if (mt.ok) {
        const now = { at: Date.now(), data: parseMetrics(await mt.text()) };
        if (previous) {
          const dt = (now.at - previous.at) / 1000, body = $("rates"); body.replaceChildren();
          for (const [svc, v] of Object.entries(now.data)) {
            const p = previous.data[svc] || { total: 0, errors: 0 };
            const tr = document.createElement("tr");
            tr.append(cell(svc), cell(((v.total - p.total) / dt).toFixed(1)), cell(((v.errors - p.errors) / dt).toFixed(1)));
            body.append(tr);
          }
        }
        previous = now;
      }
    } catch (err) { /* the stream shows the connection state */ }
    await new Promise(r => setTimeout(r, 2000));
  }
}

function signOut(why) { token = null; sessionStorage.removeItem(KEY); $("app").hidden = true; $("signin").hidden = false; $("status").textContent = "signed out"; $("signin-error").textContent = why || ""; }

async function signIn(t) {
  const resp = await fetch("/_rampart/status", { headers: { "Authorization": "Bearer " + t } });
  if (!resp.ok) { signOut(resp.status === 403 ? "this token is not an administrator's" : "token refused"); return; }
  token = t; sessionStorage.setItem(KEY, t);
  $("signin").hidden = true; $("app").hidden = false;
  follow(); poll();
}

$("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); $("token").value = ""; });
$("f-severity").addEventListener("change", renderFeed);
$("f-kind").addEventListener("input", renderFeed);
if (token) signIn(token);
