"""Code that runs on hosts inside every pipeline's pickle (it travels by value: hosts have no
unicorn-ansible): the user's own modules, rebuilt there under their own names, and the table of
the classes the pickle carries.

A module of the user's travels as its name and its namespace. Rebuilt by the node's executor,
it is also registered in ``sys.modules``, so that code importing it when it runs (``from
lab.util import fmt`` inside ``run()`` or any function) finds it, as on the controller; a
name the host's Python already has keeps its own module. Anywhere else (the controller
reading a run's pipeline back) the module is rebuilt and nothing is registered.
"""

from __future__ import annotations

import os
import sys
import types

import cloudpickle

from ..node.protocol import SHIPPED_CLASSES, SHIPPED_MODULES_VARIABLE

#: the attribute that marks a module rebuilt from a pipeline
SHIPPED = "__unicorn_shipped__"


def restore_module(name: str) -> types.ModuleType:
    """The module ``name`` of the user's code, empty: pickle sets its namespace next."""
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, SHIPPED, False):
        return existing  # another pipeline load in this process (or a task's) rebuilt it already
    module = types.ModuleType(name)
    if existing is None and os.environ.get(SHIPPED_MODULES_VARIABLE):
        setattr(module, SHIPPED, True)
        sys.modules[name] = module
        # what the node pickles of it (results, previous_steps) keeps travelling by value
        cloudpickle.register_pickle_by_value(module)
    return module


def with_classes(pipeline: object, classes: dict[str, type]) -> object:
    """The loaded pipeline, keeping the table of the classes its pickle carried by value (their
    ids, given by the controller: model/travel.py) as its ``SHIPPED_CLASSES`` attribute."""
    try:
        setattr(pipeline, SHIPPED_CLASSES, classes)
    except AttributeError:  # an object without attributes: its classes go unnamed
        pass
    return pipeline
