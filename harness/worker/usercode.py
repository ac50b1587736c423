"""A user's own code (`tfcompat scan --code module.py`), seen as a fixture: `custom_objects(ctx)` and
`build(ctx)`, so the check code treats a scanned artifact as it treats a fixture's.

The module is plain user code (it imports keras or tensorflow itself). It may define:
- `CUSTOM_OBJECTS = {name: class}` or `custom_objects()`; else every class the module defines is one;
- `build()` returning the model (compiled, to restore an optimizer too), for weights-only files.
"""

from __future__ import absolute_import

import inspect


class UserCode(object):
    def __init__(self, module):
        self.module = module
        self.CLASSES = tuple(sorted(self._objects()))

    def _objects(self):
        m = self.module
        if hasattr(m, "CUSTOM_OBJECTS"):
            return dict(m.CUSTOM_OBJECTS)
        if hasattr(m, "custom_objects"):
            return dict(m.custom_objects())
        return dict((name, obj) for name, obj in vars(m).items()
                    if inspect.isclass(obj) and obj.__module__ == m.__name__)

    def custom_objects(self, ctx):
        return self._objects()

    def build(self, ctx):
        if not hasattr(self.module, "build"):
            raise RuntimeError("a weights-only file needs the model's code: --code module.py with build()")
        return self.module.build()


def adapt(module):
    return module if isinstance(module, UserCode) else UserCode(module)
