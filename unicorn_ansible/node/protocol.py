"""What the node side and the controller agree on: file names and statuses (the records those
files hold are ``wire.py``'s).

Every name and status word here is defined once; the controller imports them from
this module, the generated plays get them as variables. Besides this module the controller
imports only the node's records and readers of what hosts send (``wire``, ``journal``,
``outcome``'s previews, ``digests``, ``files.copy_range``) and, to run a pipeline in its own
process (``engine/local.py``), the scheduler.

A node's work folder (``~/.unicorn-ansible/hosts/<host>/runs/<run>/`` on the host),
every file written atomically or append-only, so whatever finished survives a
crash of anything later:

- ``node.json``          the node's run specification (environment variables, limits, flags)
- ``deploy.json``        the node's requirements; ``deploy-report.json`` how they ran
- ``reported.json``      the last task whose header went back with a progress report
- ``pipeline.pkl``       the node's cloudpickled pipeline
- ``started.json``       the pid of the detached executor, written once by ``start``
- ``state.json``         the executor's status (an :class:`ExecutorStatus`), progress, pid
- ``journal``            one record per finished task (see below)
- ``logs/``              each task's captured output, ``executor.log``, ``executor.out``
- ``artifacts/<task>/``  the files each task leaves for the user (its artifacts folder)
- ``artifacts.json``     what the node offers to bring home: the artifacts folders and the files
  matched by declared paths, each with its size and sha256 (written when the outbox is packed)
- ``outgoing/<n>``       a link to each artifact offered, the name the controller fetches it by
- ``outbox.tar``         everything above the controller fetches, packed in one file

A journal record is a JSON header line (a :class:`~.wire.TaskRecord`), then ``payload_len``
bytes (the task's pickled Result), then a newline. Every file and answer that crosses between
host and controller is a record of ``wire.py``, with its fields, bounds and version.
"""

from __future__ import annotations

import hashlib
from enum import Enum

EXECUTOR_VERSION = "1"

# -- file names in a node's work folder -------------------------------------------------------
NODE_SPEC = "node.json"
DEPLOY_SPEC = "deploy.json"
DEPLOY_REPORT = "deploy-report.json"
PIPELINE = "pipeline.pkl"
STARTED = "started.json"
STATE = "state.json"
JOURNAL = "journal"
REPORTED = "reported.json"  # the last task whose header went back with a progress report
LOGS = "logs"
EXECUTOR_LOG = "executor.log"
EXECUTOR_OUT = "executor.out"
#: the executor log's line for each task it starts: these words, then the task as JSON (seq, name,
#: stage, index, stage_size, pid, start, log); an executor that died is read for the tasks it ran then
TASK_STARTED = "task started"
OUTBOX = "outbox.tar"
OUTBOX_MANIFEST = "outbox.json"  # the outbox's first member: which files are fetched on their own
ARTIFACTS = "artifacts"  # the tasks' artifacts folders (on the host and in the node's folder at home)
ARTIFACTS_MANIFEST = "artifacts.json"
ARTIFACTS_OUTGOING = "outgoing"
#: the environment variable (and, as ``artifacts_dir``, the task attribute) naming a task's artifacts folder
ARTIFACTS_ENV = "UNICORN_ARTIFACTS"
#: the folder of artifacts declared on a pipeline or experiment rather than a task
PIPELINE_ARTIFACTS = "_pipeline"
#: the bundle the deployment play ships, kept in the work folder for start and cancel
NODE_BUNDLE = "unicorn-node.pyz"
#: the folder inside the bundle that carries the node's own files (pipeline, specifications)
BUNDLE_NODE_FILES = "node/"
#: the node package's name inside the bundle
BUNDLE_PACKAGE = "unicorn_node"
#: the folder inside the bundle with the small ``unicorn_ansible`` tasks may import inside run();
#: last on the executor's path, so a unicorn_ansible installed on the host wins
BUNDLE_TASK_API = "task_api"
#: the files of a work folder an outbox carries besides the logs
OUTBOX_FILES = (STATE, JOURNAL, DEPLOY_REPORT, STARTED, ARTIFACTS_MANIFEST)



#: marks a task's artifacts folder whose name had to be changed; a name that has it is changed too
FOLDER_MARK = "~"
#: the longest task name (UTF-8 bytes) kept as its folder's name as it is
FOLDER_NAME_BYTES = 200


def artifact_folder(task: str | None) -> str:
    """The folder a task's artifacts are kept in, on the host and at home; one folder per name
    (injective: two tasks never share one). A name that can be a folder's as it is stays so; any
    other (a ``/``, NUL, ``.``/``..``/empty, longer than 200 bytes, the pipeline's own
    ``_pipeline``, or a name with ``~``) is cleaned (``/`` and NUL to ``_``, at most 50
    characters) and gets ``~`` and 16 digits of its sha256: ``a/b`` is ``a_b~...``, never ``a_b``,
    and ``..`` is ``..~...``, never ``_..``."""
    if task is None:
        return PIPELINE_ARTIFACTS
    encoded = task.encode("utf-8", "surrogatepass")
    if (task not in ("", ".", "..", PIPELINE_ARTIFACTS) and "/" not in task and "\0" not in task
            and FOLDER_MARK not in task and len(encoded) <= FOLDER_NAME_BYTES):
        return task
    cleaned = task.replace("/", "_").replace("\0", "_")[:50]
    return f"{cleaned}{FOLDER_MARK}{hashlib.sha256(encoded).hexdigest()[:16]}"


# -- the journal ----------------------------------------------------------------------------
SUCCESS = "Success"
FAILURE = "Failure"

# -- results going back ---------------------------------------------------------------------
#: classes the experiment shipped are pickled as (SHIPPED_CLASS, the class's id): the ids of the
#: classes a pipeline's pickle carries are its loaded pipeline's SHIPPED_CLASSES attribute,
#: {id: class} (model/travel.py gives them, node/outcome.py and results/safe_pickle.py read them)
SHIPPED_CLASS = "unicorn-ansible-class"
SHIPPED_CLASSES = "__unicorn_classes__"
DEFAULT_LOG_CAP = 10 * 1024 * 1024
#: the environment variable every task and requirement process inherits (see sweep.py)
MARKER_VARIABLE = "UNICORN_PIPELINE"
#: set by the executor while it loads its pipeline: the user's modules the pipeline carries
#: become importable under their own names (see model/shipped.py)
SHIPPED_MODULES_VARIABLE = "UNICORN_SHIPPED_MODULES"


class Word(str, Enum):
    """A status word: equal to, hashed like and printed as its text, so JSON read back
    (plain strings) compares with it, finds it in sets and dicts, and JSON written shows the text."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return str.__str__(self)


class ExecutorStatus(Word):
    """The ``status`` in state.json, as ``state``, ``start`` and ``cancel`` report it."""

    NOT_STARTED = "not started"
    STARTING = "starting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"


#: the statuses after which the executor does nothing more: the execution play stops polling
FINAL_STATUSES = (ExecutorStatus.FINISHED, ExecutorStatus.FAILED, ExecutorStatus.CANCELLED,
                  ExecutorStatus.TIMED_OUT, ExecutorStatus.LOST, ExecutorStatus.NOT_STARTED)


class TaskKind(Word):
    """How a task ended (a journal header's ``kind``)."""

    OK = "ok"  # returned a Success
    FAILURE = "failure"  # returned a Failure or raised
    UNPICKLABLE = "unpicklable"  # returned something that cannot be pickled
    CRASH = "crash"  # its process ended without a result
    TIMEOUT = "timeout"  # stopped at the task timeout or the node's time limit
    CANCELLED = "cancelled"  # stopped by a cancel
