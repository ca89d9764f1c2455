// The waiting page of a rouse on-demand entry point: it follows the chain
// over Server-Sent Events and loads the page again when the chain is ready.
// Everything the agent sends is put in the page as text, never as HTML.
(function () {
  "use strict";
  var main = document.getElementById("rouse-wait");
  var tbody = document.getElementById("components").tBodies[0];
  var title = document.getElementById("title");
  var status = document.getElementById("status");
  var retry = document.getElementById("retry");
  var view = null, at = 0, done = false;

  function secs(ms) { return ms > 0 ? (ms / 1000).toFixed(1) + " s" : "\u2013"; }
  function up(s) { return s === "ready" || s === "catching_up"; }
  // Nothing is guessed for a member with no start on record.
  function est(c) { return c.samples > 0 ? secs(c.estimated_ms) : "no estimate yet"; }
  function firstStart(v) {
    return v.components.length > 0 && v.components.every(function (c) { return !(c.samples > 0); });
  }
  function failure(v) {
    if (v.reason) { return v.reason; }
    for (var i = 0; i < v.components.length; i++) {
      if (v.components[i].error) { return v.components[i].name + ": " + v.components[i].error; }
    }
    return "a required dependency failed";
  }
  function line(v) {
    var n = 0;
    v.components.forEach(function (c) { if (up(c.state)) { n++; } });
    switch (v.state) {
      case "ready": return v.name + " is ready: opening it\u2026";
      case "failed": return v.name + " could not start: " + failure(v);
      case "stopping": return v.name + " is stopping; it starts again right after.";
      case "starting": return "Starting " + v.name + ": " + n + " of " + v.components.length + " ready" +
        (firstStart(v) ? " (first start, no estimate yet)" : "") + "\u2026";
      case "waiting": return v.reason + "\u2026";
      default: return "Waiting for " + v.name + " to start\u2026";
    }
  }
  function heading(v) {
    switch (v.state) {
      case "ready": return v.name + " is ready";
      case "failed": return v.name + " could not start";
      case "stopping": return v.name + " is stopping";
      case "waiting": return v.name + " is waiting";
      default: return "Starting " + v.name;
    }
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function render() {
    var live = view.state === "starting" ? Date.now() - at : 0;
    var rows = document.createDocumentFragment();
    view.components.forEach(function (c) {
      var tr = document.createElement("tr");
      tr.dataset.name = c.name;
      tr.dataset.state = c.state;
      var moving = c.state === "starting" || c.state === "waiting";
      var el = c.elapsed_ms + (moving ? live : 0);
      cell(tr, c.name + (c.required ? "" : " (optional)"));
      cell(tr, c.state + (c.waiting_for ? " for " + c.waiting_for : ""), "state");
      cell(tr, secs(el), "elapsed");
      cell(tr, est(c), "estimated");
      var p = document.createElement("progress");
      if (c.samples > 0 && c.estimated_ms > 0) { p.max = c.estimated_ms; p.value = up(c.state) ? c.estimated_ms : Math.min(el, c.estimated_ms); }
      else if (up(c.state)) { p.max = 1; p.value = 1; }
      cell(tr, "").appendChild(p);
      rows.appendChild(tr);
      if (c.error) {
        var er = document.createElement("tr");
        er.className = "error";
        cell(er, c.name + ": " + c.error).colSpan = 5;
        rows.appendChild(er);
      }
    });
    tbody.replaceChildren(rows);
    main.dataset.state = view.state;
    title.textContent = heading(view);
    status.textContent = line(view);
    retry.hidden = view.state !== "failed";
  }

  var es = new EventSource("/.rouse/events");
  es.addEventListener("chain", function (ev) {
    view = JSON.parse(ev.data);
    at = Date.now();
    render();
    if (view.state === "ready" && !done) {
      done = true;
      es.close();
      location.reload();
    }
  });
  es.addEventListener("error", function () {
    if (!done && view && view.state !== "failed") { status.textContent = "Lost contact with rouse; trying again\u2026"; }
  });
  setInterval(function () { if (view && view.state === "starting") { render(); } }, 250);
  retry.addEventListener("click", function () { location.reload(); });
}());
