/* tfcompat report: filters and the cell details panel. Inlined into index.html; vanilla JS.
   Record text is only ever set with textContent (never innerHTML). State lives in the URL hash:
   #fixture=..&format=..&outcome=..&nonpass=1&cell=producer|consumer|fixture|format */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var packed = document.getElementById("report-cells");

  // The cells' details come gzipped (base64): inflated once, before anything reads them.
  function inflate(b64) {
    var bin = atob(b64.trim());
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(JSON.parse);
  }
  (packed ? inflate(packed.textContent) : Promise.resolve(data.cells || [])).then(function (cells) {
    data.cells = cells;
    start();
  });

  function start() {
  var $ = function (id) { return document.getElementById(id); };
  var all = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var filters = { fixture: $("f-fixture"), format: $("f-format"), outcome: $("f-outcome") };
  var nonpass = $("f-nonpass");
  var panel = $("details");
  var body = $("d-body");
  var current = null;

  // A grid cell carries only its index into data.cells: its outcome and key are read from there.
  function cellOf(td) {
    var i = td.getAttribute("data-i");
    return i === null ? null : data.cells[Number(i)];
  }
  function outcomeOf(td) { var d = cellOf(td); return d ? d.outcome || "" : ""; }
  function keyOf(td) {
    var d = cellOf(td);
    return d ? [d.producer, d.consumer || "", d.fixture, d.format].join("|") : "";
  }

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
          var o = outcomeOf(td);
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
    if (current) { parts.push("cell=" + encodeURIComponent(keyOf(current))); }
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
  function remedyText(name) {
    var names = name.split("+");
    var labels = names.map(function (n) { return data.remedies[n] ? data.remedies[n].label : n; });
    var shorts = names.map(function (n) { return data.remedies[n] ? data.remedies[n].short : n; });
    return name + " (" + shorts.join("+") + ": " + labels.join(" + ") + ")";
  }
  function more(w) {
    var k = w.total - w.shown.length;
    return k > 0 ? "... and " + k + " more (results.jsonl has all)" : null;
  }
  function warningList(title, w) {
    section(title + " (" + w.total + ")");
    var ul = add(body, el("ul", "warnings"));
    w.shown.forEach(function (text) { add(ul, el("li", "msgtext", text)); });
    if (more(w)) { add(ul, el("li", "na", more(w))); }
  }
  function sourceNode(src) {
    if (/^https:\/\//.test(src)) {
      var a = el("a", null, src);
      a.href = src;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      return a;
    }
    return el("span", "mono", src);
  }
  function restoreText(r) {
    var text = "restore: changed " + r.changed + " of " + r.variables + " variables";
    var un = r.unmatched || [];
    if (un.length) { text += "; not matching the producer: " + un.slice(0, 5).join(", ") + (un.length > 5 ? " (+" + (un.length - 5) + " more)" : ""); }
    if (r.missing) { text += "; " + r.missing + " missing"; }
    return text;
  }
  function tolText(t) { return "atol " + num(t.atol) + ", rtol " + num(t.rtol); }

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
    var d = cellOf(td);
    if (!d) { return; }
    if (current) { current.classList.remove("sel"); }
    current = td;
    td.classList.add("sel");
    body.textContent = "";
    var where = d.consumer ? d.producer + " \u2192 " + d.consumer
      : d.producer + (d.outcome === "env-error" ? " (producer env, all consumers)" : " (artifact, all consumers)");
    add(body, el("h3", null, where + " \u00b7 " + (d.fixture || "-") + " \u00b7 " + (d.format || "-")));
    var head = add(body, el("p"));
    add(head, el("span", "chip o-" + d.outcome, data.codes[d.outcome] || "?"));
    add(head, document.createTextNode(" " + d.outcome + (d.remedy ? " with remedy " + d.remedy + " (" + d.remedy_short + ")" : "")));
    var verdicts = data.verdicts;  /* least to most severe */
    var bad = verdicts.indexOf(d.outcome) >= verdicts.indexOf("degraded");
    if (d.outcome === "harness-error") {
      add(body, el("p", "note harness", "Harness defect: " + (d.harness_defect || d.message || "?") +
        ". Not a verdict: the harness cannot stand behind this result (a failed honesty check or precondition), and the run failed."));
    }
    if (d.same_env) {
      add(body, el("p", "note" + (bad ? " defect" : ""), bad
        ? "Same-version defect: producer and consumer are the same env, so this is a defect of the framework or of the fixture, not a cross-version break."
        : "Same env: producer = consumer."));
    }
    if (d.control_failed && d.outcome !== "pass") {
      add(body, el("p", "note control", d.outcome === "save-error"
        ? "control could not be saved in this producer/format either: the failure belongs to the format/env pair."
        : "control also fails in this producer/consumer/format cell: the failure belongs to the format/env pair, not to the " + (d.fixture || "fixture") + " feature."));
    }
    if (d.outcome === "save-error") {
      add(body, el("p", "note", "The producer could not save this artifact (" +
        (data.save_error_kinds[d.save_error_kind] || "save failed") + "); no consumer could check it."));
    }
    if (d.reason || d.source) {
      section(d.outcome === "not-applicable" ? "Not applicable" : "Reason");
      kvTable([["reason", d.reason], ["source", d.source ? sourceNode(d.source) : null]]);
    }
    if (d.refusal) {
      section("Tried anyway");
      kvTable(d.refusal.refused
        ? [["call", d.refusal.call], ["raises", (d.refusal.error_type || "") + ": " + (d.refusal.message || "")]]
        : [["call", d.refusal.call], ["raises", "nothing"], ["writes", (d.refusal.wrote || []).join(", ") || "-"]]);
    }
    if (d.resaved) {
      section("Re-saved");
      kvTable([["original", d.resaved.origin + "'s " + d.format + " file of " + (d.fixture || "").split("~")[0]],
        ["loaded here with", d.resaved.loaded_with ? remedyText(d.resaved.loaded_with) : "no remedy"],
        ["saved again by", "Keras " + (d.resaved.keras_version || "?") + " in " + d.producer],
        ["rungs that did not load it", (d.resaved.tried || []).map(function (t) {
          return (t.remedy || "no remedy") + ": " + (t.error_type || "") + " " + (t.message || "").slice(0, 160);
        }).join("; ") || "-"]]);
    }
    if (d.converted) {
      section("Converted");
      kvTable([["from", d.producer + "'s " + d.converted.from + " file"],
        ["by", (d.converted.converter || "tensorflowjs") + " on TF " + (d.converted.tensorflow || "?") +
          " (the converter env)"],
        ["command", d.converted.command || "-"]]);
    }
    if (d.expectation) {
      section("Expectation (matrix.yaml)");
      var exp = d.expectation;
      kvTable(typeof exp === "object" ? Object.keys(exp).map(function (k) {
        return [k, typeof exp[k] === "object" ? JSON.stringify(exp[k]) : exp[k]];
      }) : [["expected", exp]]);
    }
    var checked = d.outcome === "harness-error" || verdicts.indexOf(d.outcome) >= 0;
    if (checked) {
      section("Result");
      var rows = [["remedy", d.remedy ? remedyText(d.remedy)
        : (d.outcome === "pass" ? "none needed" : "none (the canonical loader)")]];
      if (d.remedy_cost) { rows.push(["what it costs", d.remedy_cost]); }
      rows.push(["lost", d.lost && d.lost.length ? d.lost.join(", ") : "-"]);
      if (d.promises && d.promises.length) { rows.push(["format promises", d.promises.join(", ")]); }
      rows.push(["max abs diff", num(d.max_abs_diff)], ["max rel diff", num(d.max_rel_diff)]);
      (d.tolerances || []).forEach(function (t) { rows.push(["tolerance (" + t[0] + ")", tolText(t[1])]); });
      rows.push(["duration", d.duration_s === null || d.duration_s === undefined ? "-" : num(d.duration_s) + " s"]);
      if (d.network) { rows.push(["network seen by the checks", d.network]); }
      if (d.backends && d.backends.consumer) {
        rows.push(["backends", "producer " + (d.backends.producer || "-") + ", consumer " + d.backends.consumer]);
      }
      kvTable(rows);
    } else if (d.outcome === "save-error") {
      section("Save");
      kvTable([["save failure", data.save_error_kinds[d.save_error_kind] || d.save_error_kind || "-"],
        ["format promises", d.promises && d.promises.length ? d.promises.join(", ") : "-"]]);
    }
    if ((d.error_type || d.message) && !(d.outcome === "not-applicable" && d.reason)) {
      section(checked || d.outcome === "save-error" || d.outcome === "env-error" ? "Error" : "Message");
      var p = add(body, el("p", "msgtext"));
      if (d.error_type) { add(p, el("b", "mono", d.error_type + ": ")); }
      add(p, document.createTextNode(d.message || ""));
    }
    if (d.hint) { section("Hint"); add(body, el("p", "msgtext", d.hint)); }
    var checks = d.checks ? data.checks.filter(function (k) { return k in d.checks; })
      .concat(Object.keys(d.checks).filter(function (k) { return data.checks.indexOf(k) < 0; })) : [];
    if (checks.length) {
      section("Checks");
      kvTable(checks.map(function (k) { return [k, yesno(d.checks[k])]; }));
    }
    if (d.attempts && d.attempts.length) {
      section("Attempts (" + d.attempts.length + ")");
      var table = add(body, el("table", "attempts"));
      var hr = add(table, el("tr"));
      ["#", "remedy", "ok", "outcome", "error", "diff"].forEach(function (h) { add(hr, el("th", null, h)); });
      d.attempts.forEach(function (a, i) {
        var tr = add(table, el("tr"));
        add(tr, el("td", null, i + 1));
        add(tr, el("td", "mono", a.remedy || "none"));
        add(tr, el("td")).appendChild(yesno(a.ok));
        add(tr, el("td", null, (a.outcome || "-") + (a.lost && a.lost.length ? " (lost " + a.lost.join(", ") + ")" : "")));
        var err = add(tr, el("td", "msgtext"));
        if (a.error_type) { add(err, el("b", "mono", a.error_type + ": ")); }
        add(err, document.createTextNode(a.message || (a.error_type ? "" : "-")));
        if (a.harness_defect) { add(err, el("div", "bad", "harness defect: " + a.harness_defect)); }
        if (a.fixtures_absent === false) {
          add(err, el("div", "bad", "fixture code was loaded, registered or importable in this no-remedy attempt"));
        }
        if (a.restore) { add(err, el("div", "mono small", restoreText(a.restore))); }
        (a.notes || []).forEach(function (n) { add(err, el("div", "small", n)); });
        if (a.phase) { add(err, el("div", "na", "in the " + a.phase + " process")); }
        var w = a.warnings;
        if (w && w.total) {
          add(err, el("div", "na", "warnings (" + w.total + "): " + w.shown.join(" | ") + (more(w) ? " " + more(w) : "")));
        }
        add(tr, el("td", "mono", a.max_abs_diff === null || a.max_abs_diff === undefined ? "-"
          : num(a.max_abs_diff) + " / " + num(a.max_rel_diff)));
      });
    }
    var warnTitles = { save: "Warnings at save", load: "Warnings at load" };
    (d.warnings || []).forEach(function (w) { warningList(warnTitles[w[0]] || "Warnings", w[1]); });
    if (d.traceback) { section("Traceback (excerpt)"); add(body, el("pre", null, d.traceback)); }
    section("Versions (as installed)");
    versionBlock("producer " + d.producer, d.pv);
    if (d.consumer) { versionBlock("consumer " + d.consumer, d.cv); }
    var imports = d.consumer && d.tf_imports && d.tf_imports.consumer;
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
  function cellByKey(key) {
    var hit = all("td.cell[data-i]").filter(function (td) { return keyOf(td) === key; });
    return hit.length ? hit[0] : null;
  }
  // The tooltip comes from the cell's details, set when the pointer first reaches it.
  document.addEventListener("mouseover", function (ev) {
    var td = ev.target.closest ? ev.target.closest("td.cell[data-i]") : null;
    if (td && !td.title) { td.title = (cellOf(td) || {}).title || ""; }
  });
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest ? ev.target.closest("a.cell-link") : null;
    if (link) {
      ev.preventDefault();
      var target = cellByKey(link.getAttribute("data-key"));
      if (target) {
        if (target.classList.contains("off")) { $("f-reset").click(); }
        target.scrollIntoView({ block: "center" });
        openDetails(target);
      }
      return;
    }
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
  if (state.cell && cellByKey(state.cell)) { openDetails(cellByKey(state.cell)); }
  document.documentElement.setAttribute("data-report-ready", String(data.cells.length));
  }
}());
