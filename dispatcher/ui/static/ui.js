// The deployment page: follows /ui/deployments/ID/events (EventSource; the browser resends
// Last-Event-ID on a reconnect, `after=` resumes a connection we reopen), appends log lines
// (never re-rendering the list, so a selection survives), rewrites carriage-return progress in
// place, refreshes the server-rendered summary when a step or the status changes, and ticks
// the elapsed timers.
"use strict";
(function () {
  const root = document.getElementById("deployment");
  if (!root) return;
  const id = root.dataset.id;
  const logEl = document.getElementById("log");
  const stateEl = document.getElementById("log-state");
  const countEl = document.getElementById("log-count");
  const search = document.getElementById("log-search");
  const follow = document.getElementById("log-follow");
  let lastId = 0;
  let source = null;
  let ended = false;
  let refreshTimer = null;
  const SUMMARY = new Set(["step_started", "step_finished", "step_failed", "step_skipped",
    "status", "result", "eof", "checkpoint"]);

  function lineText(e) {
    const p = e.payload || {};
    switch (e.type) {
      case "log": return String(p.message ?? "");
      case "step_progress": return `[${p.step}] ${p.message ?? ""}`;
      case "step_skipped": return `[${p.step}] skipped: ${p.reason ?? ""}`;
      case "step_failed": return `[${p.step}] FAILED: ${p.error ?? ""}`;
      case "status": return `status ${p.status}` + (p.error ? `: ${p.error}` : "");
      case "result": return `result: ${p.outcome}`;
      default: return null;
    }
  }

  function matches(li, q = search.value.trim().toLowerCase()) {
    return !q || li.lastChild.textContent.toLowerCase().includes(q);
  }

  function updateCount() {
    const all = logEl.children.length;
    if (!search.value.trim()) { countEl.textContent = `${all} lines`; return; }
    let shown = 0;
    for (const li of logEl.children) if (!li.hidden) shown++;
    countEl.textContent = `${shown} of ${all} lines match`;
  }

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  }

  // Lines arriving are queued and added once per frame: one layout per batch, not per line.
  let pending = [];
  let flushing = false;

  function makeLine(e, text) {
    const li = document.createElement("li");
    li.id = "L" + e.id;
    li.dataset.id = String(e.id);
    li.dataset.type = e.type;
    li.dataset.ids = String(e.id);
    const level = (e.payload && e.payload.level) || (e.type === "step_failed" ? "error" : "info");
    li.className = "line lv-" + level + " t-" + e.type;
    const link = document.createElement("a");
    link.className = "ln";
    link.href = "#L" + e.id;
    link.textContent = String(e.id);
    link.title = "Copy a link to this line";
    link.setAttribute("aria-label", "Copy a link to line " + e.id);
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = (e.ts || "").slice(11, 19);
    const span = document.createElement("span");
    span.className = "text";
    span.textContent = text;
    li.append(link, ts, span);
    li.hidden = !matches(li);
    return li;
  }

  function flush() {
    flushing = false;
    const batch = pending;
    pending = [];
    const stick = follow.checked && atBottom() && String(window.getSelection() || "") === "";
    const frag = document.createDocumentFragment();
    let last = logEl.lastElementChild;
    let target = null;
    for (const e of batch) {
      const raw = lineText(e);
      if (raw === null) continue;
      const parts = raw.split("\r").filter((s) => s.length);
      const text = parts.length ? parts[parts.length - 1] : "";
      // A line that starts with \r overwrites the line before it (a progress bar).
      if (raw.startsWith("\r") && last && last.dataset.type === e.type) {
        last.querySelector(".text").textContent = text;
        last.dataset.ids += " " + e.id;
        continue;
      }
      last = makeLine(e, text);
      if (location.hash === "#L" + e.id) target = last;
      frag.appendChild(last);
    }
    logEl.appendChild(frag);
    updateCount();
    if (target) { target.classList.add("target"); target.scrollIntoView(); }
    else if (stick && logEl.lastElementChild) logEl.lastElementChild.scrollIntoView({ block: "end" });
  }

  function addLine(e) {
    pending.push(e);
    if (flushing) return;
    flushing = true;
    // A background tab gets no animation frames: a timer keeps its log current.
    if (document.hidden) setTimeout(flush, 100); else requestAnimationFrame(flush);
  }

  async function refresh() {
    refreshTimer = null;
    const r = await fetch(`/ui/deployments/${id}/summary`, { credentials: "same-origin" });
    if (!r.ok) return;
    document.getElementById("summary").innerHTML = await r.text();
    wireConfirm();
    tick();
  }

  function scheduleRefresh() {
    if (!refreshTimer) refreshTimer = setTimeout(refresh, 250);
  }

  function onEvent(msg) {
    const e = JSON.parse(msg.data);
    if (e.id <= lastId) return; // already shown
    lastId = e.id;
    root.dataset.seen = String(lastId);
    addLine(e);
    if (SUMMARY.has(e.type)) scheduleRefresh();
  }

  function connect() {
    if (source) source.close();
    ended = false;
    source = new EventSource(`/ui/deployments/${id}/events?after=${lastId}`);
    stateEl.textContent = "live";
    for (const t of ["log", "step_started", "step_progress", "step_finished", "step_failed",
      "step_skipped", "status", "result", "eof", "checkpoint", "heartbeat"]) {
      source.addEventListener(t, onEvent);
    }
    source.addEventListener("end", () => {
      ended = true;
      source.close();
      stateEl.textContent = "complete";
      root.dataset.ended = "1";
      scheduleRefresh();
    });
    source.onerror = () => { if (!ended) stateEl.textContent = "reconnecting…"; };
  }

  function fmt(s) {
    s = Math.max(0, s);
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    return Math.floor(s / 60) + " m " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const el of document.querySelectorAll(".elapsed")) {
      const since = el.dataset.sinceS ? Number(el.dataset.sinceS) : Date.parse(el.dataset.since) / 1000;
      const untilRaw = el.dataset.untilS ? Number(el.dataset.untilS)
        : el.dataset.until ? Date.parse(el.dataset.until) / 1000 : null;
      el.textContent = fmt((untilRaw ?? now) - since) + (untilRaw === null ? "…" : "");
    }
  }

  function wireConfirm() {
    for (const f of document.querySelectorAll("form[data-confirm]")) {
      f.addEventListener("submit", (ev) => { if (!confirm(f.dataset.confirm)) ev.preventDefault(); });
    }
  }

  logEl.addEventListener("click", (ev) => {
    const a = ev.target.closest("a.ln");
    if (!a) return;
    ev.preventDefault();
    const url = location.href.split("#")[0] + a.getAttribute("href");
    history.replaceState(null, "", a.getAttribute("href"));
    for (const t of logEl.querySelectorAll(".target")) t.classList.remove("target");
    a.parentElement.classList.add("target");
    if (navigator.clipboard) navigator.clipboard.writeText(url).catch(() => {});
    stateEl.textContent = "line link copied";
  });
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const li of logEl.children) {
      const hide = !matches(li, q);
      if (li.hidden !== hide) li.hidden = hide;
    }
    updateCount();
  });
  document.getElementById("log-wrap").addEventListener("change", (ev) => {
    logEl.classList.toggle("wrap", ev.target.checked);
  });
  window.forgeLog = { reconnect: connect, lastId: () => lastId };
  wireConfirm();
  tick();
  setInterval(tick, 1000);
  connect();
})();
