// What every page shares: signing in from a link's page, the list kept current, the running
// timers, confirmations. The deployment page's log and stream are page.js.
"use strict";
(function () {
  // -- signing in: the link's page posts it back from our own origin, then moves on ----------
  // (dispatcher/ui/signin.py says why). The page it leaves is replaced in the history, so Back
  // goes back to where the link was clicked. Anything but the redirect: the form is submitted
  // as it is, and the answer (why it was refused) is shown as a page.
  const signin = document.getElementById("signin");
  if (signin) {
    const body = new URLSearchParams(new FormData(signin));
    fetch(signin.action, { method: "POST", body, credentials: "same-origin", redirect: "manual" })
      .then((r) => {
        if (r.type === "opaqueredirect") location.replace(signin.dataset.target);
        else signin.submit();
      })
      .catch(() => signin.submit());
  }

  // -- timers and confirmations (the list and the deployment page) --------------------------
  function fmt(s) {
    s = Math.max(0, s);
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    return Math.floor(s / 60) + " m " + String(Math.floor(s % 60)).padStart(2, "0") + " s";
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const el of document.querySelectorAll(".elapsed")) {
      const since = el.dataset.sinceS ? Number(el.dataset.sinceS) : Date.parse(el.dataset.since) / 1000;
      const until = el.dataset.untilS ? Number(el.dataset.untilS)
        : el.dataset.until ? Date.parse(el.dataset.until) / 1000 : null;
      el.textContent = fmt((until ?? now) - since) + (until === null ? "…" : "");
    }
  }

  function wireConfirm(root) {
    for (const f of root.querySelectorAll("form[data-confirm]")) {
      f.addEventListener("submit", (ev) => { if (!confirm(f.dataset.confirm)) ev.preventDefault(); });
    }
  }

  /** Replace `el`'s content with `html`, keeping the keyboard's place and open folds. */
  function replaceKeeping(el, html) {
    const active = document.activeElement;
    const focused = active && el.contains(active) ? (active.id || active.getAttribute("href")) : null;
    const open = [...el.querySelectorAll("details[open][id]")].map((d) => d.id);
    el.innerHTML = html;
    for (const id of open) { const d = document.getElementById(id); if (d) d.open = true; }
    if (focused) {
      const again = document.getElementById(focused) || el.querySelector(`[href="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    wireConfirm(el);
    tick();
  }

  /** Calls `fn` again after a wait that doubles on each failure (1 s to 15 s). */
  function backoff() {
    let wait = 1000;
    return {
      reset() { wait = 1000; },
      later(fn) { const t = setTimeout(fn, wait); wait = Math.min(wait * 2, 15000); return t; },
    };
  }

  window.forgeUi = { tick, wireConfirm, replaceKeeping, backoff };
  wireConfirm(document);
  tick();
  setInterval(tick, 1000);

  // -- the list: read again every 2 s, so deploys in flight move without a reload ------------
  const rows = document.getElementById("rows");
  if (!rows) return;
  const state = document.getElementById("list-state");
  const updated = document.getElementById("list-updated");
  const retry = backoff();
  let last = rows.innerHTML;

  async function poll() {
    let r;
    try {
      r = await fetch(`/ui/rows?${rows.dataset.query}`, { credentials: "same-origin" });
    } catch (e) {
      state.textContent = "reconnecting…";
      retry.later(poll);
      return;
    }
    if (r.status === 401 || r.status === 403) {
      state.textContent = "signed out: open a new link";
      return;
    }
    if (!r.ok) { state.textContent = "reconnecting…"; retry.later(poll); return; }
    const html = await r.text();
    if (html !== last) { replaceKeeping(rows, html); last = html; }
    retry.reset();
    state.textContent = "live";
    updated.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    setTimeout(poll, 2000);
  }
  poll();
})();
