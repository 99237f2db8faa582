// Polls /simulator/state and redraws the grid and the tallies; turns the
// buttons' forms into background POSTs so the page stays in place.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  const fields = ["sent", "acknowledged", "delivered", "lost", "duplicated"];
  let cells = [];

  function show(msg) {
    const m = $("message");
    m.textContent = msg;
    m.hidden = !msg;
  }

  function setRow(row, r, done, stored) {
    if (!r) return;
    for (const f of fields) {
      const v = f === "lost" && !done ? "-" : String(r[f]);
      row.querySelector("." + f).textContent = v;
    }
    row.querySelector(".rc").textContent = String(r.readCommittedViolations);
    if (stored !== undefined) row.querySelector(".stored").textContent = String(stored);
  }

  function draw(st) {
    $("state").textContent = st.state + (st.busy ? " (busy)" : "") + (st.error ? ": " + st.error : "");
    $("claim").textContent = st.claim;
    const v = $("verdict");
    v.textContent = st.verdict || "-";
    v.className = st.verdict && st.verdict.startsWith("broken") ? "broken" : st.verdict && st.verdict.startsWith("held") ? "held" : "";
    if (st.nodes && st.nodes.length) {
      $("broker").textContent = st.nodes
        .map((n) => "node " + n.id + ": " + (!n.up ? "down" : n.leader ? "leader" : n.inSync ? "in sync" : "out of sync"))
        .join(" · ");
    } else {
      $("broker").textContent = st.state === "idle" ? "-" : st.brokerUp ? "up" : "down (restarting)";
    }
    if ($("partition")) $("partition").textContent = st.partition || "-";
    if ($("refused")) $("refused").textContent = st.refused || (st.state === "idle" ? "-" : "none");
    $("worker").textContent = st.consumerWorker ? "generation " + st.consumerWorker : "-";
    const done = !!st.final;
    setRow($("page-tally"), st.tally, done, st.stored);
    if (done) {
      setRow($("checker-tally"), st.final.checker, true);
      $("hit").textContent = String(st.final.produceResponsesHit);
    }
    const recs = st.records || "";
    if (recs.length < cells.length) {
      grid.textContent = "";
      cells = [];
    }
    while (cells.length < recs.length) {
      const c = document.createElement("span");
      c.dataset.id = String(cells.length);
      grid.appendChild(c);
      cells.push(c);
    }
    for (let i = 0; i < recs.length; i++) {
      const cls = "rec f-" + recs[i];
      if (cells[i].className !== cls) {
        cells[i].className = cls;
        cells[i].title = "record " + i;
      }
    }
    const ev = $("events");
    const evs = st.events || [];
    while (ev.children.length > evs.length) ev.removeChild(ev.lastChild);
    for (let i = ev.children.length; i < evs.length; i++) {
      const li = document.createElement("li");
      li.textContent = evs[i];
      ev.appendChild(li);
    }
    document.body.dataset.state = st.state;
  }

  async function poll() {
    try {
      const r = await fetch("/simulator/state", { cache: "no-store" });
      if (r.ok) draw(await r.json());
    } catch (e) {
      show("lost contact with the server");
    }
    setTimeout(poll, 300);
  }

  async function post(form) {
    show("");
    try {
      const r = await fetch(form.action, {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams(new FormData(form)),
      });
      const body = await r.json();
      if (body.error) show(body.error);
    } catch (e) {
      show("request failed");
    }
  }

  for (const f of document.querySelectorAll("form")) {
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      post(f);
    });
  }
  poll();
})();
