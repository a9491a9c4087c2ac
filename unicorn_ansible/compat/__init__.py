"""Compatibility with objects of other tools: netunicorn-base and netunicorn-library.

Loading this package registers netunicorn's adapter with the model (compat/netunicorn.py), which
imports netunicorn only once one of its objects is seen."""

from . import netunicorn as netunicorn
