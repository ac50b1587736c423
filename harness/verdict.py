"""From attempts to a cell's verdict. The rules (docs/DESIGN.md, "Verdict rules"):

1. An attempt whose own precondition failed (`harness-error`) makes the cell a harness defect:
   not a verdict, and the run fails loudly.
2. Silent corruption is never hidden: if any attempt loaded without error and predicted
   differently, the cell is `wrong-output`, with the first such rung. A user stops at the first
   rung that loads; no later rung can undo what they got.
3. Otherwise the best outcome any attempt reached, with the least invasive rung reaching it
   (attempts are in ladder order): pass < degraded (fewer properties lost is better) <
   load-error < crash < timeout. A crash or hang is one more attempt, never a replacement.
   A pass through a rung is `pass-with-remedy`.
"""

from __future__ import annotations

from .outcomes import severity
from .worker.remedies import BY_NAME, parts

HINTS = [
    ("Unknown layer", "pass custom_objects={...} to load_model, or register the class with "
     "@keras.saving.register_keras_serializable() in code imported before loading"),
    ("Unknown optimizer", "pass the optimizer class in custom_objects, or load with compile=False "
     "and compile again"),
    ("parent module", "the saved config names a module that cannot be imported: make the custom "
     "class importable or pass it in custom_objects"),
    ("File format not supported", "Keras 3 cannot load a Keras 2 SavedModel with load_model: use "
     "keras.layers.TFSMLayer(path, call_endpoint='serving_default') for inference, or load it with "
     "tf_keras (pip install tf-keras) and re-save as .keras"),
    ("Only instances of `keras.Layer`", "tensorflow_hub.KerasLayer is a Keras 2 (tf-keras) layer: use "
     "tf-keras with TF_USE_LEGACY_KERAS=1, or wrap the module with keras.layers.TFSMLayer"),
    ("Can only generate a valid config for `hub.KerasLayer", "a hub.KerasLayer made from a loaded "
     "module object has no config: build it from the handle (a path or URL string), or save the "
     "weights only (save_weights) or the whole graph with tf.saved_model.save"),
    ("must be an instance of class Layer", "a layer class could not be resolved: pass custom_objects"),
    ("Lambda", "loading Python lambdas needs safe_mode=False (only for files you trust)"),
    ("safe_mode", "loading Python lambdas needs safe_mode=False (only for files you trust)"),
    ("bad marshal data", "Lambda bytecode is tied to the Python version: rebuild the Lambda in code"),
    ("restore did nothing", "the weights file was read without error but restored nothing into this "
     "model: check that the model is built with the same variables (names and structure) before "
     "load_weights, and call status.assert_consumed() on a checkpoint restore"),
    ("restore was partial", "some variables were not restored: compare model.weights with the "
     "saved ones; a checkpoint restore's status.assert_existing_objects_matched() names them"),
    ("state the format does not hold", "the model keeps state outside its tracked variables "
     "(a tf.Variable Keras does not track): create it with add_weight, or assign it to a tracked "
     "attribute, so formats save it"),
    ("optimizer_state", "the optimizer state did not come back, so resuming training starts a fresh "
     "optimizer (with compile=False that is the remedy's own cost; from a Keras 2 SavedModel, "
     "model.load_weights(path) after load_model restores it, keras-team/keras#16983)"),
    ("custom_classes", "custom classes came back as generic placeholders: pass custom_objects so "
     "they are rebuilt as themselves"),
]



def _rank(outcome: str) -> int:
    """How bad an attempt is, for choosing the best one (wrong-output is rule 2, not ranked here)."""
    return severity(outcome) if severity(outcome) >= 0 else 99


def passed(result: dict | None) -> bool:
    """Whether a worker result for one artifact has an attempt that passed (the ladder stops there)."""
    return any(a.get("outcome") == "pass" for a in (result or {}).get("attempts") or [])


def hint_for(text: str) -> str | None:
    for needle, hint in HINTS:
        if needle in (text or ""):
            return hint
    return None


def remedy_hint(rung: str | None) -> str | None:
    """What to do, for every remedy of a rung."""
    return "; and ".join(BY_NAME[p].hint for p in parts(rung)) or None


def remedy_cost(rung: str | None) -> str | None:
    """What the remedies of a rung cost the user (None for no remedy)."""
    return "; ".join(BY_NAME[p].cost for p in parts(rung)) or None


def combine(attempts: list[dict]) -> dict:
    """Verdict fields for a cell from all its attempts, in the order they were made."""
    if not attempts:
        return {"outcome": "harness-error", "remedy": None, "lost": [],
                "harness_defect": "no load attempt was recorded for this cell"}
    defect = next((a for a in attempts if a["outcome"] == "harness-error"), None)
    if defect is not None:
        return _fields(defect, "harness-error", defect, attempts,
                       harness_defect=defect.get("harness_defect") or defect.get("message"))
    wrong = next((a for a in attempts if a["outcome"] == "wrong-output"), None)
    if wrong is not None:
        return _fields(wrong, "wrong-output", wrong, attempts)
    best = min(enumerate(attempts), key=lambda ia: (_rank(ia[1]["outcome"]),
                                                     len(ia[1].get("lost") or []), ia[0]))[1]
    outcome = best["outcome"]
    if outcome == "pass" and best["remedy"] is not None:
        outcome = "pass-with-remedy"
    first_error = next((a for a in attempts if a["outcome"] != "pass"), None)
    shown = best if best["outcome"] != "pass" else (first_error or best)
    return _fields(best, outcome, shown, attempts)


def _fields(best: dict, outcome: str, shown: dict, attempts: list[dict], **extra) -> dict:
    text = " ".join([shown.get("message") or ""] + list(best.get("lost") or []))
    out = {
        "outcome": outcome,
        "remedy": best["remedy"],
        "remedy_cost": remedy_cost(best["remedy"]) if outcome != "harness-error" else None,
        "lost": list(best.get("lost") or []),
        "max_abs_diff": best.get("max_abs_diff"),
        "max_rel_diff": best.get("max_rel_diff"),
        "error_type": shown.get("error_type"),
        "message": shown.get("message"),
        "traceback": shown.get("traceback"),
        "checks": best.get("checks") or {},
        "hint": _hint(outcome, best["remedy"], text),
    }
    out.update(extra)
    return out


def _hint(outcome: str, remedy: str | None, text: str) -> str | None:
    if outcome == "pass":
        return None
    found = hint_for(text)
    if remedy and outcome == "pass-with-remedy":
        return remedy_hint(remedy)
    if outcome == "wrong-output":
        # No rung repairs silent corruption: say what is known of its cause, not how to "reach" it.
        return found or ("it loads without error but predicts differently: do not use this artifact "
                         "here; re-export it in a format whose cell passes")
    if remedy and found:
        return "best reached with: %s. Still: %s" % (remedy_hint(remedy), found)
    return found or remedy_hint(remedy)
