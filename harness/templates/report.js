/* tfcompat report: filters and the cell details panel. Inlined into index.html; vanilla JS.
   Record text is only ever set with textContent (never innerHTML). State lives in the URL hash:
   #fixture=..&format=..&outcome=..&nonpass=1&cell=producer|consumer|fixture|format */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var all = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var filters = { fixture: $("f-fixture"), format: $("f-format"), outcome: $("f-outcome") };
  var nonpass = $("f-nonpass");
  var panel = $("details");
  var body = $("d-body");
  var current = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function num(x) {
    if (x === null || x === undefined) { return "-"; }
    if (typeof x !== "number") { return String(x); }
    if (x === 0) { return "0"; }
    return Math.abs(x) < 1e-3 || Math.abs(x) >= 1e4 ? x.toExponential(2) : String(Math.round(x * 1e6) / 1e6);
  }
  function yesno(v) {
    if (v === true) { return el("span", "ok", "yes"); }
    if (v === false) { return el("span", "bad", "no"); }
    return el("span", "na", "not checked");
  }

  /* ---- filters ---- */
  function applyFilters() {
    var fx = filters.fixture.value, fm = filters.format.value, oc = filters.outcome.value;
    var np = nonpass.checked, shown = 0, total = 0;
    all("section.fixture").forEach(function (section) {
      var anyRow = false, prev = null;
      var tableOn = !fx || section.getAttribute("data-fixture") === fx;
      all("tr.grow", section).forEach(function (tr) {
        var rowOn = tableOn && (!fm || tr.getAttribute("data-format") === fm);
        var anyCell = false;
        all("td.cell", tr).forEach(function (td) {
          var o = td.getAttribute("data-outcome");
          var on = rowOn && (o ? (!oc || o === oc) && (!np || o !== "pass") : !oc && !np);
          if (o) { total += 1; }
          if (on && o) { shown += 1; anyCell = true; }
          td.classList.toggle("off", !on);
        });
        tr.hidden = !anyCell;
        if (anyCell) {
          anyRow = true;
          tr.classList.toggle("group-start", tr.getAttribute("data-producer") !== prev);
          prev = tr.getAttribute("data-producer");
        }
      });
      section.hidden = !anyRow;
    });
    $("f-count").textContent = shown + " of " + total + " cells shown";
    $("f-empty").hidden = shown > 0;
    writeHash();
  }

  function readHash() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i > 0) { out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1)); }
    });
    return out;
  }
  function writeHash() {
    var parts = [];
    Object.keys(filters).forEach(function (k) {
      if (filters[k].value) { parts.push(k + "=" + encodeURIComponent(filters[k].value)); }
    });
    if (nonpass.checked) { parts.push("nonpass=1"); }
    if (current) { parts.push("cell=" + encodeURIComponent(current.getAttribute("data-key"))); }
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash && history.replaceState) {
      history.replaceState(null, "", hash || location.pathname + location.search);
    }
  }
  function setSelect(select, value) {
    if (value && all("option", select).some(function (o) { return o.value === value; })) { select.value = value; }
  }

  /* ---- details panel ---- */
  function section(title) { add(body, el("h4", null, title)); }
  function kvTable(rows) {
    var table = el("table", "kv");
    rows.forEach(function (r) {
      var tr = add(table, el("tr"));
      add(tr, el("th", null, r[0]));
      var td = add(tr, el("td"));
      if (r[1] instanceof Node) { td.appendChild(r[1]); } else { td.textContent = r[1] === null || r[1] === undefined ? "-" : String(r[1]); }
    });
    return add(body, table);
  }
  function versionBlock(label, idx) {
    var v = idx === null || idx === undefined ? null : data.versions[idx];
    var box = add(body, el("div"));
    add(box, el("b", null, label));
    if (!v) { add(box, el("span", "na", " unknown")); return; }
    var pk = v.packages || {};
    var find = function (name) {
      var hit = Object.keys(pk).filter(function (k) { return k.toLowerCase().replace(/[_.]/g, "-") === name; });
      return hit.length ? pk[hit[0]] : "-";
    };
    var table = add(box, el("table", "kv"));
    [["python", v.python], ["tensorflow", v.tensorflow], ["keras", v.keras], ["h5py", find("h5py")],
      ["numpy", find("numpy")], ["protobuf", find("protobuf")], ["tensorflow-hub", find("tensorflow-hub")]]
      .forEach(function (r) {
        var tr = add(table, el("tr"));
        add(tr, el("th", null, r[0]));
        add(tr, el("td", "mono", r[1] === undefined || r[1] === null ? "-" : r[1]));
      });
    var names = Object.keys(pk).sort();
    if (names.length) {
      var det = add(box, el("details"));
      add(det, el("summary", null, "all " + names.length + " packages"));
      add(det, el("pre", null, names.map(function (k) { return k + "==" + pk[k]; }).join("\n")));
    }
  }

  function openDetails(td) {
    var d = data.cells[Number(td.getAttribute("data-i"))];
    if (!d) { return; }
    if (current) { current.classList.remove("sel"); }
    current = td;
    td.classList.add("sel");
    body.textContent = "";
    var where = d.consumer ? d.producer + " \u2192 " + d.consumer : d.producer + " (artifact, all consumers)";
    add(body, el("h3", null, where + " \u00b7 " + (d.fixture || "-") + " \u00b7 " + (d.format || "-")));
    var head = add(body, el("p"));
    add(head, el("span", "chip o-" + d.outcome, data.codes[d.outcome] || "?"));
    add(head, document.createTextNode(" " + d.outcome + (d.remedy ? " with remedy " + d.remedy : "")));
    var bad = ["degraded", "load-error", "crash", "timeout", "wrong-output"].indexOf(d.outcome) >= 0;
    if (d.same_env) {
      add(body, el("p", "note" + (bad ? " defect" : ""), bad
        ? "Same-version defect: producer and consumer are the same env, so this is a defect of the framework or of the fixture, not a cross-version break."
        : "Same env: producer = consumer."));
    }
    if (d.control_failed && d.outcome !== "pass") {
      add(body, el("p", "note control", "control also fails in this producer/consumer/format cell: the failure belongs to the format/env pair, not to the " + (d.fixture || "fixture") + " feature."));
    }
    if (d.outcome === "save-error") {
      add(body, el("p", "note", "The producer could not save this artifact; no consumer could check it."));
    }
    if (d.expectation) {
      section("Expectation (matrix.yaml)");
      var exp = d.expectation;
      kvTable(typeof exp === "object" ? Object.keys(exp).map(function (k) {
        return [k, typeof exp[k] === "object" ? JSON.stringify(exp[k]) : exp[k]];
      }) : [["expected", exp]]);
    }
    section("Result");
    var tol = d.tolerance ? "atol " + num(d.tolerance.atol) + ", rtol " + num(d.tolerance.rtol) : "-";
    kvTable([
      ["remedy", d.remedy || (d.outcome === "pass" ? "none needed" : "-")],
      ["lost", d.lost && d.lost.length ? d.lost.join(", ") : "-"],
      ["max abs diff", num(d.max_abs_diff)],
      ["max rel diff", num(d.max_rel_diff)],
      ["tolerance", tol],
      ["duration", d.duration_s === null || d.duration_s === undefined ? "-" : num(d.duration_s) + " s"]
    ]);
    if (d.error_type || d.message) {
      section("Error");
      var p = add(body, el("p", "msgtext"));
      if (d.error_type) { add(p, el("b", "mono", d.error_type + ": ")); }
      add(p, document.createTextNode(d.message || ""));
    }
    if (d.hint) { section("Hint"); add(body, el("p", "msgtext", d.hint)); }
    if (d.checks) {
      section("Checks");
      kvTable(["predictions", "classes", "optimizer", "resume"].map(function (k) { return [k, yesno(d.checks[k])]; }));
    }
    if (d.attempts && d.attempts.length) {
      section("Attempts (" + d.attempts.length + ")");
      var table = add(body, el("table"));
      var hr = add(table, el("tr"));
      ["#", "remedy", "ok", "outcome", "error", "diff"].forEach(function (h) { add(hr, el("th", null, h)); });
      d.attempts.forEach(function (a, i) {
        var tr = add(table, el("tr"));
        add(tr, el("td", null, i + 1));
        add(tr, el("td", "mono", a.remedy || "none"));
        add(tr, el("td")).appendChild(yesno(a.ok));
        add(tr, el("td", null, a.outcome || "-"));
        var err = add(tr, el("td", "msgtext"));
        if (a.error_type) { add(err, el("b", "mono", a.error_type + ": ")); }
        add(err, document.createTextNode(a.message || (a.error_type ? "" : "-")));
        if (a.warnings && a.warnings.length) { add(err, el("div", "na", "warnings: " + a.warnings.join(" | "))); }
        add(tr, el("td", "mono", a.max_abs_diff === null || a.max_abs_diff === undefined ? "-"
          : num(a.max_abs_diff) + " / " + num(a.max_rel_diff)));
      });
    }
    if (d.warnings && d.warnings.length) {
      section("Warnings (" + d.warnings.length + ")");
      var ul = add(body, el("ul"));
      d.warnings.forEach(function (w) { add(ul, el("li", "msgtext", w)); });
    }
    if (d.traceback) { section("Traceback (excerpt)"); add(body, el("pre", null, d.traceback)); }
    section("Versions (as installed)");
    versionBlock("producer " + d.producer, d.pv);
    if (d.consumer) { versionBlock("consumer " + d.consumer, d.cv); }
    var imports = d.tf_imports && d.tf_imports.consumer;
    if (imports && Object.keys(imports).length) {
      section("TF imports (consumer)");
      kvTable(Object.keys(imports).map(function (k) { return [k, imports[k]]; }));
    }
    panel.hidden = false;
    panel.scrollTop = 0;
    document.body.classList.add("panel-open");
    writeHash();
  }
  function closeDetails() {
    panel.hidden = true;
    document.body.classList.remove("panel-open");
    if (current) { current.classList.remove("sel"); current.focus(); }
    current = null;
    writeHash();
  }

  /* ---- wiring ---- */
  document.addEventListener("click", function (ev) {
    var td = ev.target.closest ? ev.target.closest("td.cell[data-i]") : null;
    if (td && !td.classList.contains("off")) { openDetails(td); }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && !panel.hidden) { closeDetails(); return; }
    var td = ev.target.closest ? ev.target.closest("td.cell[data-i]") : null;
    if (td && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); openDetails(td); }
  });
  $("d-close").addEventListener("click", closeDetails);
  Object.keys(filters).forEach(function (k) { filters[k].addEventListener("change", applyFilters); });
  nonpass.addEventListener("change", applyFilters);
  $("f-reset").addEventListener("click", function () {
    Object.keys(filters).forEach(function (k) { filters[k].value = ""; });
    nonpass.checked = false;
    applyFilters();
  });

  var state = readHash();
  Object.keys(filters).forEach(function (k) { setSelect(filters[k], state[k]); });
  nonpass.checked = state.nonpass === "1";
  applyFilters();
  if (state.cell) {
    var hit = all("td.cell[data-key]").filter(function (td) { return td.getAttribute("data-key") === state.cell; });
    if (hit.length) { openDetails(hit[0]); }
  }
  document.documentElement.setAttribute("data-report-ready", String(data.cells.length));
}());
