"""Optimizer slots by identity: "<kind>:<index>", the slot kind and the index of the model's trainable
variable it belongs to, the same for the same model in every Keras; the producer's values are kept
in the artifact dir (SLOTS_FILE) and compared element by element."""

from __future__ import absolute_import

import os

SLOTS_FILE = "slots.npz"

# Keras 2 OptimizerV2 slot names that other Keras versions call otherwise (SGD's and RMSprop's
# momentum is the list other Keras versions call momentums; RMSprop's rms their velocities).
V2_KINDS = {"momentum": "m", "rms": "v"}

# Keras 2.11+ and Keras 3: per-kind lists aligned with the variables the optimizer was built on.
LISTS = (("_momentums", "m"), ("momentums", "m"), ("_m", "m"), ("_velocities", "v"), ("_u", "v"),
         ("_v", "v"), ("_velocity_hats", "vhat"), ("_average_gradients", "mg"), ("_accumulators", "accumulator"),
         ("_linears", "linear"), ("_accumulated_grads", "accum_grad"), ("_accumulated_delta_vars", "accum_var"),
         ("_r", "r"), ("_c", "c"), ("_model_variables_moving_average", "average"),
         ("_accumulated_gradients", "gradient_accumulator"))


def innermost(opt):
    """The optimizer that holds the slots (a loss-scale optimizer wraps another)."""
    while getattr(opt, "inner_optimizer", None) is not None and opt.inner_optimizer is not opt:
        opt = opt.inner_optimizer
    return opt


def optimizer_slots(ctx, model):
    """{identity: array} of the slots the model's optimizer holds now (or None without an optimizer).

    Non-scalar optimizer variables that belong to no known kind are kept as "other:<n>" (in the
    optimizer's own order), so an optimizer this table does not know is still compared."""
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    opt = innermost(opt)
    variables = list(model.trainable_variables)
    found = {}
    claimed = set()
    if hasattr(opt, "get_slot_names") and hasattr(opt, "get_slot"):  # Keras 2 OptimizerV2
        for name in opt.get_slot_names():
            for i, var in enumerate(variables):
                try:
                    slot = opt.get_slot(var, name)
                except (KeyError, ValueError):
                    continue
                found["%s:%d" % (V2_KINDS.get(name, name), i)] = slot
    else:
        position = _position(opt)
        for attr, kind in LISTS:
            slots = getattr(opt, attr, None)
            if not isinstance(slots, (list, tuple)) or not slots:
                continue
            for i, var in enumerate(variables):
                j = position(var, i)
                if j is not None and j < len(slots) and slots[j] is not None:
                    found["%s:%d" % (kind, i)] = slots[j]
    out = {}
    for key, slot in found.items():
        claimed.add(id(slot))
        out[key] = _array(ctx, slot)
    others = [v for v in _variables(opt) if id(v) not in claimed and _array(ctx, v).size > 1]
    for n, var in enumerate(others):
        out["other:%d" % n] = _array(ctx, var)
    return out


def _position(opt):
    """var, i -> the index of the model variable in the optimizer's own lists (None: not there)."""
    if callable(getattr(opt, "_get_variable_index", None)):  # Keras 3

        def keras3(var, i):
            try:
                return opt._get_variable_index(var)
            except (KeyError, AttributeError):
                return None

        return keras3
    index = getattr(opt, "_index_dict", None)
    if isinstance(index, dict) and callable(getattr(opt, "_var_key", None)):  # Keras 2.11+

        def keras2(var, i):
            return index.get(opt._var_key(var))

        return keras2
    return lambda var, i: i


def _variables(opt):
    variables = getattr(opt, "variables", [])
    return list(variables() if callable(variables) else variables)


def _array(ctx, value):
    return ctx.np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def write_slots(ctx, out_dir, slots):
    if slots:
        ctx.np.savez(os.path.join(out_dir, SLOTS_FILE), **slots)


def read_slots(ctx, art_dir):
    """The producer's slots, or None when the artifact dir holds none."""
    path = os.path.join(art_dir, SLOTS_FILE)
    if not os.path.exists(path):
        return None
    with ctx.np.load(path) as data:
        return dict((name, data[name]) for name in data.files)


def compare_slots(ctx, got, want, tol):
    """{"differ": [...], "missing": [...], "extra": [...]} by identity; all empty when they match."""
    np = ctx.np
    differ = []
    for name in sorted(set(got) & set(want)):
        mine = np.asarray(got[name], dtype="float64")
        theirs = np.asarray(want[name], dtype="float64")
        if mine.shape != theirs.shape or not np.allclose(mine, theirs, atol=tol["atol"], rtol=tol["rtol"]):
            differ.append(name)
    return {"differ": differ, "missing": sorted(set(want) - set(got)), "extra": sorted(set(got) - set(want))}
