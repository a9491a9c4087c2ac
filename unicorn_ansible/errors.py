"""The exceptions unicorn-ansible raises for user mistakes and failed runs.

Every message names what is wrong and how to fix it; the CLI prints it on one
line and exits 2 for a usage mistake (UsageError, ExperimentError, InventoryError), 1 for
anything else (a run or trust failure: RunError, UntrustedDataError, TestbedError).
"""

from __future__ import annotations


class UnicornError(Exception):
    """Base class of every error unicorn-ansible raises on purpose."""


class RemoteClientException(UnicornError):
    """What netunicorn's client raises when a verb fails; the client raises its subclasses (every
    error of a verb's own: a bad name, an unusable experiment or inventory, a failed run), so a
    notebook's ``except RemoteClientException`` catches what netunicorn's would."""


class UsageError(RemoteClientException):
    """A command or call was given something it cannot use: a bad or unknown run name, a taken one."""


class ExperimentError(RemoteClientException):
    """The experiment (file, pipeline, dispatch) is not usable."""


class GraphError(ExperimentError, ValueError):
    """An ExecutionGraph breaks one of its rules (a ValueError too, as in netunicorn)."""


class InventoryError(RemoteClientException):
    """The inventory is missing, unparsable, or lacks a node."""


class RunError(RemoteClientException):
    """A run cannot be created, found or read."""


class TestbedError(UnicornError):
    """The local testbed cannot be brought up, inspected or taken down."""


class UntrustedDataError(UnicornError):
    """Data fetched from a host was refused (it is not what a result may contain)."""
