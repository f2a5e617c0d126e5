// The deployment page: its log and its live stream.
//
// The log arrives as lines the server has already read (dispatcher/ui/views.py, LogLine.wire:
// colours as classes, `rewrites` when a line replaces the one before it, as a progress bar does):
// the stored ones in the page (#log-data), then batches from /ui/deployments/ID/events
// (EventSource; the browser resends Last-Event-ID on a reconnect, `after=` resumes a connection
// we reopen). Every line is kept as data; the page draws only the chunks of CHUNK lines near the
// screen (an IntersectionObserver draws them as they come near and forgets them far away), so a
// log of 50,000 lines costs what its screenful costs. Search filters the data, a line's link
// finds its chunk, the download (log.txt) is the same lines as text.
//
// The connection word says what is true: "live" once the stream is open, "reconnecting…" while it
// is not, "complete" when the deployment is over and everything was shown. A summary refresh that
// fails is tried again.
"use strict";
(function () {
  const root = document.getElementById("deployment");
  if (!root) return;
  const ui = window.forgeUi;
  const id = root.dataset.id;
  const logEl = document.getElementById("log");
  const summaryEl = document.getElementById("summary");
  const stateEl = document.getElementById("log-state");
  const statusEl = document.getElementById("live-status");
  const countEl = document.getElementById("log-count");
  const search = document.getElementById("log-search");
  const follow = document.getElementById("log-follow");
  const CHUNK = 100;
  const LINE_H = 19; // a line's height unwrapped (.log .line), the estimate of an undrawn chunk

  // -- the lines, as data ---------------------------------------------------------------------
  const lines = []; // {id, ids, time, type, level, segs, lower}
  let view = []; // indexes of the lines the search matches, in order
  let query = "";

  function textOf(segs) {
    return typeof segs === "string" ? segs : segs.map((s) => s[0]).join("");
  }

  function lowerOf(line) {
    if (line.lower === null) line.lower = textOf(line.segs).toLowerCase();
    return line.lower;
  }

  function matches(line) {
    return !query || lowerOf(line).includes(query);
  }

  // -- drawing ------------------------------------------------------------------------------
  function span(cls, text) {
    const el = document.createElement("span");
    el.className = cls;
    el.textContent = text;
    return el;
  }

  function fill(el, segs) {
    if (typeof segs === "string") { el.textContent = segs; return; }
    el.textContent = "";
    for (const [text, cls] of segs) el.append(cls ? span(cls, text) : text);
  }

  function drawLine(line) {
    const li = document.createElement("li");
    li.id = "L" + line.id;
    li.dataset.ids = line.ids.join(" ");
    li.className = `line lv-${line.level} t-${line.type}`;
    const a = document.createElement("a");
    a.className = "ln";
    a.href = "#L" + line.id;
    a.title = "Copy a link to this line";
    a.setAttribute("aria-label", "Copy a link to line " + line.id);
    a.textContent = String(line.id);
    li.append(a, span("ts", line.time));
    if (line.level !== "info") li.append(span("lvl", line.level === "error" ? "error" : "warn"));
    const text = span("text", "");
    fill(text, line.segs);
    li.append(text);
    return li;
  }

  // -- chunks: drawn near the screen, forgotten far from it ----------------------------------
  let chunks = []; // {el, start, drawn}
  const chunkOf = new WeakMap();
  const observer = new IntersectionObserver(seen, { rootMargin: "1500px 0px" });

  function size(c) {
    return Math.min(CHUNK, view.length - c.start);
  }

  function draw(c) {
    const frag = document.createDocumentFragment();
    for (let i = c.start; i < c.start + size(c); i++) frag.append(drawLine(lines[view[i]]));
    c.el.textContent = "";
    c.el.append(frag);
    c.el.style.height = "";
    c.drawn = true;
  }

  function holds(el) {
    const sel = window.getSelection();
    if (sel && sel.rangeCount && !sel.isCollapsed && el.contains(sel.getRangeAt(0).commonAncestorContainer)) return true;
    return el.contains(document.activeElement) || el.querySelector(".target") !== null;
  }

  function forget(c) {
    if (!c.drawn || holds(c.el)) return;
    c.el.style.height = c.el.offsetHeight + "px";
    c.el.textContent = "";
    c.drawn = false;
  }

  function seen(entries) {
    for (const entry of entries) {
      const c = chunkOf.get(entry.target);
      if (entry.isIntersecting && !c.drawn) draw(c);
      else if (!entry.isIntersecting && c.drawn) forget(c);
    }
  }

  function newChunk(start, now) {
    const el = document.createElement("ol");
    el.className = "chunk";
    const c = { el, start, drawn: false };
    chunkOf.set(el, c);
    chunks.push(c);
    if (now) draw(c); else el.style.height = size(c) * LINE_H + "px";
    logEl.append(el);
    observer.observe(el);
    return c;
  }

  function rebuild() {
    observer.disconnect();
    logEl.textContent = "";
    chunks = [];
    view = [];
    for (let i = 0; i < lines.length; i++) if (matches(lines[i])) view.push(i);
    for (let s = 0; s < view.length; s += CHUNK) newChunk(s, false);
    updateCount();
  }

  function updateCount() {
    countEl.textContent = query ? `${view.length} of ${lines.length} lines match` : `${lines.length} lines`;
  }

  // -- lines arriving -------------------------------------------------------------------------
  function atBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  }

  function append(i) {
    view.push(i);
    const at = view.length - 1;
    const last = chunks[chunks.length - 1];
    if (!last || at - last.start >= CHUNK) newChunk(at, !last || last.drawn);
    else if (last.drawn) last.el.append(drawLine(lines[i]));
    else last.el.style.height = size(last) * LINE_H + "px";
  }

  function rewrite(line) {
    line.lower = null;
    const shown = document.getElementById("L" + line.id);
    if (shown) shown.replaceWith(drawLine(line));
  }

  /** Keeps a line as the server sent it: the line it adds, or null when it rewrote the last. */
  function keep([lineId, time, type, level, rewrites, segs]) {
    const last = lines[lines.length - 1];
    if (rewrites && last) {
      last.segs = segs;
      last.ids.push(lineId);
      rewrite(last);
      return null;
    }
    const line = { id: lineId, ids: [lineId], time, type, level, segs, lower: null };
    lines.push(line);
    return line;
  }

  function take(wires) {
    const stick = follow.checked && atBottom() && String(window.getSelection() || "") === "";
    for (const wire of wires) {
      const line = keep(wire);
      if (line && matches(line)) append(lines.length - 1);
    }
    updateCount();
    if (stick && view.length) window.scrollTo(0, document.body.scrollHeight);
  }

  function showTarget() {
    const wanted = Number(location.hash.slice(2));
    if (!location.hash.startsWith("#L") || !wanted) return;
    const at = view.findIndex((i) => lines[i].ids.includes(wanted));
    if (at < 0) return;
    const c = chunks[Math.floor(at / CHUNK)];
    if (!c.drawn) draw(c);
    const el = document.getElementById("L" + lines[view[at]].id);
    for (const t of logEl.querySelectorAll(".target")) t.classList.remove("target");
    el.classList.add("target");
    el.scrollIntoView({ block: "center" });
  }

  // -- the summary, the status line ---------------------------------------------------------
  let refreshTimer = null;
  let ended = false;
  const refreshes = ui.backoff();

  function showStatus() {
    const body = document.getElementById("summary-body");
    const status = body.dataset.status;
    statusEl.textContent = status === "running" && body.dataset.step ? `${status} · ${body.dataset.step}` : status;
  }

  async function refresh() {
    refreshTimer = null;
    try {
      const r = await fetch(`/ui/deployments/${id}/summary`, { credentials: "same-origin" });
      if (!r.ok) throw new Error(`summary answered ${r.status}`);
      ui.replaceKeeping(summaryEl, await r.text());
    } catch (e) {
      refreshTimer = refreshes.later(refresh); // offline, or the server away: again, later
      return;
    }
    refreshes.reset();
    showStatus();
    if (ended) root.dataset.ended = "1";
  }

  function scheduleRefresh() {
    if (!refreshTimer) refreshTimer = setTimeout(refresh, 250);
  }

  // -- the stream ------------------------------------------------------------------------------
  let lastId = Number(root.dataset.lastId) || 0;
  let source = null;
  const reconnects = ui.backoff();

  function connect() {
    if (source) source.close();
    ended = false;
    delete root.dataset.ended;
    stateEl.textContent = "connecting…";
    source = new EventSource(`/ui/deployments/${id}/events?after=${lastId}`);
    source.onopen = () => {
      stateEl.textContent = "live";
      reconnects.reset();
    };
    source.addEventListener("lines", (msg) => {
      stateEl.textContent = "live";
      const batch = JSON.parse(msg.data);
      lastId = Math.max(lastId, Number(msg.lastEventId) || 0);
      root.dataset.seen = String(lastId);
      take(batch.lines);
      if (batch.summary) scheduleRefresh();
    });
    source.addEventListener("end", () => {
      ended = true;
      source.close();
      stateEl.textContent = "complete";
      scheduleRefresh();
    });
    source.onerror = () => {
      if (ended) return;
      stateEl.textContent = "reconnecting…";
      // The browser retries by itself while it can; a refused or failed answer closes the
      // stream for good, so it is opened again here.
      if (source.readyState === EventSource.CLOSED) reconnects.later(connect);
    };
  }

  // -- the controls -------------------------------------------------------------------------
  logEl.addEventListener("click", (ev) => {
    const a = ev.target.closest("a.ln");
    if (!a) return;
    ev.preventDefault();
    const url = location.href.split("#")[0] + a.getAttribute("href");
    history.replaceState(null, "", a.getAttribute("href"));
    for (const t of logEl.querySelectorAll(".target")) t.classList.remove("target");
    a.parentElement.classList.add("target");
    if (navigator.clipboard) navigator.clipboard.writeText(url).catch(() => {});
    statusEl.textContent = "line link copied";
  });
  let searching = null;
  search.addEventListener("input", () => {
    clearTimeout(searching);
    searching = setTimeout(() => { query = search.value.trim().toLowerCase(); rebuild(); }, 80);
  });
  document.getElementById("log-wrap").addEventListener("change", (ev) => {
    logEl.classList.toggle("wrap", ev.target.checked);
  });

  for (const wire of JSON.parse(document.getElementById("log-data").textContent)) keep(wire);
  rebuild();
  showTarget();
  showStatus();
  root.dataset.drawn = String(lines.length);
  window.forgeLog = {
    reconnect: connect,
    lastId: () => lastId,
    ids: () => lines.flatMap((l) => l.ids),
    texts: () => lines.map((l) => textOf(l.segs)),
    shown: () => view.map((i) => lines[i].id),
  };
  connect();
})();
