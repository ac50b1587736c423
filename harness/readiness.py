"""Upgrade readiness from the grid: moving from env A to env B, per fixture kind and format.

A pure function of a run's records. For each fixture x format it reads the A->B cell (every attempt,
not only the verdict), the B->B cell (does a model saved in B load in B's own Keras) and, where the
run has it, the re-save variant's B->B cell (A's file loaded in B, saved again by B, loaded in B: the
path the upgrade really takes), and classes the move (STATUSES, best first). Rungs that leave Keras 3
(the legacy `tf_keras`) or keep only inference (`TFSMLayer`, `tf.saved_model.load`) are never
"ready": they are classed apart, in the A->B cell and in the round trips alike. Per fixture kind,
"move with" is the format with the best A->B status that also round-trips in B (and whose re-save
in B does), among the formats that keep the weights (training goes on); "serve with" the best for
inference alone (no round trip needed: B serves what A saved); where nothing loads A->B, a path
through an intermediate env C that the grid proves (A->C in one format, C->B in another). A format
that loads wrong, A->B or after its re-save in B, is one to avoid, and fails the exit code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import results
from .matrix_defaults import RESAVED
from .worker.formats import FORMATS, USER_CALL
from .worker.remedies import BY_NAME, REMEDIES, parts

LEGACY = {r.name for r in REMEDIES if r.keras2}
INFERENCE_ONLY = {r.name for r in REMEDIES if r.inference}

# status -> (label, meaning); best first
STATUSES = {
    "ready": ("ready", "loads with the canonical loader, nothing lost"),
    "ready-with-remedy": ("ready with a remedy", "loads in B's own Keras with the remedy shown, nothing lost"),
    "loses-state": ("loads, loses state", "loads in B's own Keras only by giving up what is listed"),
    "serving-only": ("serving only", "only an inference-only loader works: ready for serving, not for training"),
    "legacy-only": ("loads only through tf_keras", "only the legacy Keras 2 (tf_keras) loads it: that is not "
                                                   "moving to Keras 3"),
    "breaks": ("breaks", "does not load in B, with or without the remedies"),
    "wrong-output": ("WRONG OUTPUT", "loads and predicts differently: silent corruption"),
    "cannot-save": ("A cannot save it", "the producer could not save this artifact"),
    "not-applicable": ("not applicable", "the format does not exist on one side"),
    "unknown": ("no verdict", "env error or harness defect: see the grid"),
    "missing": ("not run", "no record for this cell in the run"),
}
RANK = {s: i for i, s in enumerate(STATUSES)}
LOADS = ("ready", "ready-with-remedy", "loses-state", "serving-only", "legacy-only")
MOVABLE = ("ready", "ready-with-remedy")
# The fixture kind's verdict, best first; exit code 0 only when every kind can move (CAN_MOVE) and no
# format loads wrong.
VERDICTS = {
    "ready": ("ready", "a whole-model format crosses with no change"),
    "ready-with-changes": ("ready with changes", "move with the format and code shown"),
    "via-intermediate": ("ready through an intermediate env", "re-save in that env first"),
    "migrated": ("ready after migration", "a converted copy was made here and checked in B"),
    "loses-state": ("loads, losing state", "it loads in B's own Keras only by giving up what is listed"),
    "serving-only": ("ready for serving only", "not for training: only inference crosses"),
    "legacy-only": ("not ready: loads only through tf_keras", "the legacy Keras 2 is not a move to Keras 3"),
    "breaks": ("not ready", "nothing the grid tried loads it in B"),
    "cannot-save": ("A cannot save it", "no format of it could be saved in A"),
    "unknown": ("unknown", "the cells are missing from the run"),
}
CAN_MOVE = ("ready", "ready-with-changes", "via-intermediate", "migrated")
REF = re.compile(r"(https?://[^\s)\]]+|\b[\w.-]+/[\w.-]+#\d+)")


@dataclass
class Cell:
    """One format of one fixture kind: the A->B cell, the B->B round trip and, where the run has one,
    the re-save variant's B->B cell (`resave`)."""

    fixture: str
    format: str
    status: str
    outcome: str | None
    remedy: str | None = None  # the rung of the attempt that gave the status
    loader: str | None = None
    lost: list = field(default_factory=list)
    cost: str | None = None
    error: str | None = None  # what breaks without help: "ValueError: ..."
    references: list = field(default_factory=list)
    expectation: str | None = None
    round_trip: str | None = None  # B->B outcome
    round_trip_status: str | None = None  # the B->B cell classed as an A->B one is: in B's own Keras or not
    also: list = field(default_factory=list)  # other classes reached: legacy/serving rescues beside a native one
    needs_round_trip: bool = True  # a scanned artifact has none: B never made it
    path: str | None = None  # a scanned artifact's own path (else the format's file name)
    # The re-save variant `<fixture>~A`, B->B: A's file loaded in B, saved again by B, loaded in B
    # (None where the run has none that applies). On that cell, `resaved` is the record's: how B
    # loaded A's file to save it again.
    resave: Cell | None = None
    resaved: dict | None = None

    @property
    def movable(self) -> bool:
        """Crosses A->B in B's own Keras, round-trips in B's own Keras, and so does A's file re-saved in B."""
        return self.crosses and (self.resave is None or self.resave.status in MOVABLE)

    @property
    def crosses(self) -> bool:
        """Loads A->B in B's own Keras, nothing lost, and B's own file of it loads there too."""
        return self.status in MOVABLE and (not self.needs_round_trip or self.round_trip_status in MOVABLE)

    @property
    def wrong(self) -> bool:
        """Loads and predicts differently on the way from A to B: the A->B cell, or A's file re-saved in B."""
        return "wrong-output" in (self.status, self.resave.status if self.resave else None)

    @property
    def decided_by_resave(self) -> bool:
        """Whether the re-save cell, not the A->B cell, is what keeps this format from moving (or makes
        it load wrong)."""
        if self.resave is None or self.status == "wrong-output":
            return False
        return self.resave.status == "wrong-output" or (self.crosses and not self.movable)

    @property
    def loads(self) -> bool:
        """Whether some loader got it back in B (there is a load call to show)."""
        return self.status in LOADS

    @property
    def keeps(self) -> tuple:
        return FORMATS[self.format][1]

    def load_code(self) -> str:
        return load_code(self.format, self.remedy, self.loader, self.path)


@dataclass
class Fixture:
    name: str
    verdict: str
    move_with: Cell | None = None
    serve_with: Cell | None = None
    via: dict | None = None  # {"env", "first": Cell (A->C), "then": Cell (C->B)}
    avoid: list = field(default_factory=list)  # formats that load wrong: never move with these


@dataclass
class Readiness:
    a: str
    b: str
    run_id: str
    cells: list
    fixtures: list
    missing: list  # [(producer, consumer, fixture, format)] of the A->B and B->B cells not in the run
    labels: dict = field(default_factory=dict)  # a scan's artifact name -> its path
    notes: dict = field(default_factory=dict)  # a scan's artifact name -> [what A said, rungs not tried]
    migrations: dict = field(default_factory=dict)  # a scan's artifact name -> [routes tried, with their proof]
    skipped: list = field(default_factory=list)  # a scan's [(path, why)] not scanned

    @property
    def can_move(self) -> int:
        """How many fixture kinds (or artifacts) can move."""
        return sum(1 for f in self.fixtures if f.verdict in CAN_MOVE)

    @property
    def exit_code(self) -> int:
        """0 when every fixture kind can move and no format loads wrong (A->B or re-saved in B), else 1."""
        wrong = any(f.avoid for f in self.fixtures)
        return 0 if self.can_move == len(self.fixtures) and not wrong else 1


def classify(rec: dict | None) -> tuple[str, dict]:
    """The status of one A->B record and the attempt that gives it."""
    if rec is None:
        return "missing", {}
    outcome = rec.get("outcome") or ""
    if outcome == "wrong-output":
        first: dict = next((a for a in rec.get("attempts") or [] if a.get("outcome") == "wrong-output"), {})
        return "wrong-output", first
    if outcome == "save-error":
        return "cannot-save", {}
    if outcome == "not-applicable":
        return "not-applicable", {}
    if not results.is_verdict(outcome):
        return "unknown", {}
    best: tuple[str, dict] = ("breaks", {})
    for att in rec.get("attempts") or []:
        got = att.get("outcome")
        names = set(parts(att.get("remedy")))
        if names & LEGACY:
            status = "legacy-only" if got == "pass" else None
        elif names & INFERENCE_ONLY:
            status = "serving-only" if got in ("pass", "degraded") else None
        elif got == "pass":
            status = "ready" if not names else "ready-with-remedy"
        elif got == "degraded":
            status = "loses-state"
        else:
            status = None
        if status and RANK[status] < RANK[best[0]]:
            best = (status, att)
    return best


def build(records: list[dict], a: str, b: str, fixtures: list[str], formats: list[str], envs: list[str],
          run_id: str = "-", pairs: list | None = None, round_trip: bool = True) -> Readiness:
    """Readiness of the move from env `a` to env `b` over the run's `records`: every fixture x format,
    or only `pairs` [(fixture, format)] (a scan: each artifact has its one format, and no round trip
    in B, which never made it). A fixture's re-save variant `<fixture>~a` is read into its cells
    (`Cell.resave`), never a kind of its own."""
    pairs = pairs if pairs is not None else [(fx, fmt) for fx in fixtures for fmt in formats]
    cells_by_key = {(r.get("producer"), r.get("consumer"), r.get("fixture"), r.get("format")): r
                    for r in records if r.get("fixture")}
    artifacts = {(r.get("producer"), r.get("fixture"), r.get("format")): r
                 for r in records if r.get("fixture") and not r.get("consumer")}

    def rec_of(p: str, c: str, fx: str, fmt: str) -> dict | None:
        return cells_by_key.get((p, c, fx, fmt)) or artifacts.get((p, fx, fmt))

    sides = ((a, b), (b, b)) if round_trip else ((a, b),)
    missing = [(p, c, fx, fmt) for fx, fmt in pairs for p, c in sides if rec_of(p, c, fx, fmt) is None]
    cells = [make_cell(rec_of(a, b, fx, fmt), rec_of(b, b, fx, fmt) if round_trip else None, fx, fmt)
             for fx, fmt in pairs]
    for c in cells:
        c.needs_round_trip = round_trip
        if round_trip:
            c.resave = resave_cell(rec_of(b, b, variant(c.fixture, a), c.format), c.fixture, a, c.format)
    out = []
    for fx in fixtures:
        mine = [c for c in cells if c.fixture == fx]
        out.append(_fixture(fx, mine, a, b, envs, rec_of))
    return Readiness(a, b, run_id, cells, out, missing)


def variant(fx: str, origin: str) -> str:
    """The name of the fixture's re-save variant whose files come from `origin`."""
    return "%s%s%s" % (fx, RESAVED, origin)


def resave_cell(rec: dict | None, fx: str, a: str, fmt: str) -> Cell | None:
    """The re-save variant's B->B cell (A's file loaded in B, saved by B, loaded in B), or None where
    the run has none or it does not apply (a serving format, a format A did not save)."""
    c = make_cell(rec, None, variant(fx, a), fmt)
    if c.status in ("missing", "not-applicable"):
        return None
    c.needs_round_trip = False  # it is itself a round trip in B
    c.resaved = (rec or {}).get("resaved")
    return c


def make_cell(ab: dict | None, bb: dict | None, fx: str, fmt: str) -> Cell:
    status, att = classify(ab)
    ab = ab or {}
    plain: dict = next((x for x in ab.get("attempts") or [] if x.get("remedy") is None), {})
    error = plain.get("error_type") or ab.get("error_type")
    message = plain.get("message") or ab.get("message")
    exp = ab.get("expectation") or {}
    text = " ".join(str(x) for x in (message, ab.get("hint"), exp.get("reason"), exp.get("source"),
                                     ab.get("source")) if x)
    also = []
    for x in ab.get("attempts") or []:
        names = set(parts(x.get("remedy")))
        if x.get("outcome") == "pass" and names & (LEGACY | INFERENCE_ONLY) and x.get("remedy") != att.get("remedy"):
            also.append(x.get("remedy"))
    return Cell(
        fixture=fx, format=fmt, status=status, outcome=ab.get("outcome"), remedy=att.get("remedy"),
        loader=att.get("loader"), lost=list(att.get("lost") or ab.get("lost") or []),
        cost=_cost(att.get("remedy")),
        error=("%s: %s" % (error, _first_line(message)) if error else _first_line(message)) if status != "ready"
        else None,
        references=sorted(set(REF.findall(text))), expectation=exp.get("reason"),
        round_trip=(bb or {}).get("outcome"), round_trip_status=classify(bb)[0] if bb else None, also=also)


def _fixture(fx: str, cells: list[Cell], a: str, b: str, envs: list[str], rec_of) -> Fixture:
    avoid = [c.format for c in cells if c.wrong]
    movable = sorted((c for c in cells if c.movable), key=_preference)
    training = [c for c in movable if "weights" in c.keeps]
    # serving needs no re-save in B: the artifact made in A is what B serves (but a format that loads
    # wrong on the way, even after a re-save, is one to avoid: it is never offered)
    serving = [c for c in cells if c.status in MOVABLE + ("serving-only",) and not c.wrong]
    # to serve, the format that needs no model code comes first
    serve_with = min(serving, key=lambda c: (RANK[c.status], FORMATS[c.format][2] == "code", _preference(c))) \
        if serving else None
    if training:
        best = training[0]
        whole = best.status == "ready" and "architecture" in best.keeps
        return Fixture(fx, "ready" if whole else "ready-with-changes", best, serve_with, avoid=avoid)
    via = _via(fx, a, b, envs, rec_of, [c.format for c in cells])
    if via:
        return Fixture(fx, "via-intermediate", None, serve_with, via, avoid)
    losing = sorted((c for c in cells if c.status == "loses-state"), key=_preference)
    if losing:
        return Fixture(fx, "loses-state", losing[0], serve_with, avoid=avoid)
    if serve_with:
        return Fixture(fx, "serving-only", None, serve_with, avoid=avoid)
    if any(c.status == "legacy-only" for c in cells):
        return Fixture(fx, "legacy-only", None, None, avoid=avoid)
    if all(c.status == "cannot-save" for c in cells):
        return Fixture(fx, "cannot-save", avoid=avoid)
    if all(c.status in ("missing", "unknown") for c in cells):
        return Fixture(fx, "unknown", avoid=avoid)
    return Fixture(fx, "breaks", avoid=avoid)


def _via(fx: str, a: str, b: str, envs: list[str], rec_of, formats: list[str]) -> dict | None:
    """A two-hop path the grid proves for this fixture kind: A->C loads (ready, in C's Keras), a
    model re-saved in C crosses C->B and round-trips in B."""
    best = None
    for c in envs:
        if c in (a, b):
            continue
        first = [make_cell(rec_of(a, c, fx, f), rec_of(c, c, fx, f), fx, f) for f in formats]
        then = [make_cell(rec_of(c, b, fx, f), rec_of(b, b, fx, f), fx, f) for f in formats]
        hop1 = sorted((x for x in first if x.movable and "architecture" in x.keeps), key=_preference)
        hop2 = sorted((x for x in then if x.movable and "weights" in x.keeps), key=_preference)
        if hop1 and hop2:
            score = (_preference(hop1[0]), _preference(hop2[0]))
            if best is None or score < best[0]:
                best = (score, {"env": c, "first": hop1[0], "then": hop2[0]})
    return best[1] if best else None


def _preference(c: Cell) -> tuple:
    # Among the cells that move: the format that keeps the most (custom_objects costs nothing, a
    # weights-only format costs the model code), then no unsafe load, then the fewest remedies.
    return (c.status not in MOVABLE, RANK[c.status] if c.status not in MOVABLE else 0,
            "architecture" not in c.keeps, "weights" not in c.keeps, "optimizer_state" not in c.keeps,
            "safe_mode_false" in parts(c.remedy), RANK[c.status], len(parts(c.remedy)), c.format)


def _cost(rung: str | None) -> str | None:
    costs = [BY_NAME[p].cost for p in parts(rung) if p in BY_NAME]
    return "; ".join(costs) if costs else None


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    line = str(text).strip().splitlines()[0]
    return line if len(line) <= 240 else line[:237] + "..."


# ---- the code a user pastes ------------------------------------------------------------------

# The working save call per format: the user's call, except a Keras 2 SavedModel, which wants the
# format named when the path could be read as a file name.
SAVE_CODE = dict(USER_CALL, savedmodel='model.save("savedmodel", save_format="tf")',
                 json='open("model.json", "w").write(model.to_json()); model.save_weights("weights.h5")',
                 tf_weights='model.save_weights("tf_weights/weights", save_format="tf")')


def _js_load_code(fmt: str, names: list[str], path: str) -> str:
    """The TF.js load (and save-again) calls, as JavaScript."""
    url = path.strip('"')
    if fmt == "tfjs_graph":
        code = "const model = await tf.loadGraphModel('%s');" % url
        if "wrap_tf_model" in names:
            code += "\n// model.save() failed: wrap it in a tf.Model (a layers model around it), then save that"
        return code
    code = "const model = await tf.loadLayersModel('%s');" % url
    if "js_register_class" in names:
        code = ("tf.serialization.registerClass(MyLayer);  // each custom class, ported to JavaScript\n"
                + code)
    return code


def load_code(fmt: str, rung: str | None, loader: str | None, where: str | None = None) -> str:
    """The load call that gave the status, as code: what the user pastes in B."""
    path = '"%s"' % (where or FORMATS[fmt][0])
    names = parts(rung)
    kind = loader or FORMATS[fmt][2]
    if kind in ("layers", "graph", "tfjs"):
        return _js_load_code(fmt, names, path)
    if "tfsm_layer" in names or kind == "tfsm":
        return 'layer = keras.layers.TFSMLayer(%s, call_endpoint="serving_default")  # inference only' % path
    if "tf_saved_model_load" in names or kind == "serving":
        return 'serve = tf.saved_model.load(%s).signatures["serving_default"]  # inference only' % path
    if kind == "json":
        module = "tf_keras" if "legacy_keras" in names else "keras"
        co = ", custom_objects={...}" if "custom_objects" in names else ""
        return ('model = %s.models.model_from_json(open(%s).read()%s)\n'
                'model.load_weights("weights.h5")  # the weights file saved beside it' % (module, path, co))
    if kind == "code":
        if "legacy_keras" in names:
            return ("import tf_keras  # pip install tf-keras; build the model with tf_keras\n"
                    "model = build_model()  # your model code\nmodel.load_weights(%s)" % path)
        if fmt == "checkpoint":
            return ("model = build_model()  # your model code\n"
                    "tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(%s)" % path)
        return "model = build_model()  # your model code\nmodel.load_weights(%s)" % path
    args = [path]
    if "custom_objects" in names:
        args.append("custom_objects={...}")  # the model's custom classes, by name
    if "compile_false" in names:
        args.append("compile=False")
    if "safe_mode_false" in names:
        args.append("safe_mode=False")
    module = "tf_keras" if "legacy_keras" in names else "keras"
    code = "model = %s.models.load_model(%s)" % (module, ", ".join(args))
    if module == "tf_keras":
        code = "import tf_keras  # pip install tf-keras\n" + code
    if "custom_objects" in names:
        code += "  # custom_objects: {name: class} of the model's custom classes"
    if "reload_weights" in names:
        code += "\nmodel.load_weights(%s)  # restores the optimizer state" % path
    if "compile_false" in names:
        code += "\nmodel.compile(...)  # again, with a fresh optimizer"
    return code
