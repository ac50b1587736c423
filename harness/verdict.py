"""From attempts to a cell's verdict: the least invasive remedy that reaches the best outcome."""

from __future__ import annotations

from .results import severity

# Least invasive first; None is the canonical loader with no help.
REMEDY_ORDER = [None, "custom_objects", "reload_weights", "compile_false", "safe_mode_false",
                "safe_mode_false_compile_false", "legacy_keras",
                "tfsm_layer", "tf_saved_model_load"]

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
    ("must be an instance of class Layer", "a layer class could not be resolved: pass custom_objects"),
    ("Lambda", "loading Python lambdas needs safe_mode=False (only for files you trust)"),
    ("safe_mode", "loading Python lambdas needs safe_mode=False (only for files you trust)"),
    ("bad marshal data", "Lambda bytecode is tied to the Python version: rebuild the Lambda in code"),
    ("optimizer_state", "the optimizer state was not restored: for a Keras 2 SavedModel call "
     "model.load_weights(path) after load_model (keras-team/keras#16983); otherwise resuming training "
     "starts a fresh optimizer"),
    ("custom_classes", "custom classes came back as generic placeholders: pass custom_objects so "
     "they are rebuilt as themselves"),
]


REMEDY_HINTS = {
    "custom_objects": "load with custom_objects={...} naming the custom classes (or register them "
                      "with @keras.saving.register_keras_serializable before loading)",
    "reload_weights": "call model.load_weights(path) after load_model to restore the optimizer state "
                      "(keras-team/keras#16983)",
    "compile_false": "load with compile=False and compile the model again",
    "safe_mode_false": "load with safe_mode=False (only for files you trust)",
    "safe_mode_false_compile_false": "load with safe_mode=False and compile=False (only for files you "
                                     "trust), then compile the model again",
    "legacy_keras": "load it with tf_keras (pip install tf-keras), the legacy Keras 2, then re-save "
                    "in the .keras format",
    "tfsm_layer": "wrap it with keras.layers.TFSMLayer(path, call_endpoint='serving_default') "
                  "(inference only)",
    "tf_saved_model_load": "tf.saved_model.load(path).signatures['serving_default'] (inference only)",
}


def hint_for(text: str) -> str | None:
    for needle, hint in HINTS:
        if needle in (text or ""):
            return hint
    return None


def _rank(attempt: dict) -> tuple[int, int, int]:
    order = REMEDY_ORDER.index(attempt["remedy"]) if attempt["remedy"] in REMEDY_ORDER else 99
    # Among degraded loads, the one that keeps more of what the format promises is better.
    return _attempt_severity(attempt["outcome"]), len(attempt.get("lost") or []), order


def _attempt_severity(outcome: str) -> int:
    # Among attempts, a wrong output is not "better" than a refusal to load; compare by harm.
    return {"pass": 0, "degraded": 1, "wrong-output": 2, "load-error": 3}.get(outcome, 4)


def combine(attempts: list[dict]) -> dict:
    """Verdict fields for a cell from all its attempts, in the order they were made.

    A wrong output from the no-remedy load wins over anything a remedy reaches: a user who got a
    model that loads has no reason to try a remedy, so the silent corruption is what they get.
    """
    if not attempts:
        return {"outcome": "load-error", "remedy": None, "lost": [], "message": "no load attempt was made"}
    plain = [a for a in attempts if a["remedy"] is None]
    if plain and plain[0]["outcome"] == "wrong-output":
        best = plain[0]
    else:
        best = min(attempts, key=_rank)
    outcome = best["outcome"]
    if outcome == "pass" and best["remedy"] is not None:
        outcome = "pass-with-remedy"
    first_error = next((a for a in attempts if a["outcome"] != "pass"), None)
    shown = best if best["outcome"] != "pass" else (first_error or best)
    text = " ".join([shown.get("message") or ""] + list(best.get("lost") or []))
    return {
        "outcome": outcome,
        "remedy": best["remedy"],
        "lost": list(best.get("lost") or []),
        "max_abs_diff": best.get("max_abs_diff"),
        "max_rel_diff": best.get("max_rel_diff"),
        "error_type": shown.get("error_type"),
        "message": shown.get("message"),
        "traceback": shown.get("traceback"),
        "checks": best.get("checks") or {},
        "hint": _hint(outcome, best["remedy"], text),
    }


def _hint(outcome: str, remedy: str | None, text: str) -> str | None:
    if outcome == "pass":
        return None
    found = hint_for(text)
    if remedy in REMEDY_HINTS and outcome == "pass-with-remedy":
        return REMEDY_HINTS[remedy]
    if remedy in REMEDY_HINTS and found:
        return "best reached with: %s. Still: %s" % (REMEDY_HINTS[remedy], found)
    return found or REMEDY_HINTS.get(remedy)
