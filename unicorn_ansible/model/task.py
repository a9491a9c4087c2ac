"""Tasks and TaskDispatchers: the units a pipeline is made of (netunicorn's model)."""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from .nodes import Node


def _new_name() -> str:
    return str(uuid.uuid4())


#: what a ``__subclasshook__`` returns to let ABCMeta decide as it always does
_AS_USUAL: bool = NotImplemented


def _shaped_like_task(cls: type) -> bool:
    """A ``run`` method and a ``requirements`` list: what every task has (netunicorn's too)."""
    return callable(getattr(cls, "run", None)) and isinstance(getattr(cls, "requirements", None), list)


class Task(abc.ABC):
    """
    This is a base class for all tasks. All new task classes should inherit from this class.
    The task instance should encapsulate all the logic and data needed to execute the task.
    Task entrypoint is the run() method.
    Task class can have requirements - commands to be executed to change environment to support this task.
    These requirements would be executed with OS shell during environment setup.
    Each task is to be implemented for a specific architecture, platform, or combination (like Linux + arm64).
    TaskDispatcher can be used for selecting a specific task for the given architecture, platform, or combination.

    Task always returns a Result object.
    - If the task's `run` method returns Result object by itself, you'll receive this Result object
    - If the task's `run` method returns any other object, you'll receive a Success with returned_value encapsulated
    - If the task's `run` method raises an exception, you'll receive a Failure with str(exception) encapsulated
    """

    #: Commands executed with the OS shell, in the node's environment, before the pipeline starts.
    requirements: list[str] = []

    #: Processes the task starts are stopped when the pipeline ends (success, failure, exception,
    #: timeout or cancel alike). True keeps the ones still running then, e.g. a server a later
    #: run uses; stopping them is then the experiment's job.
    keep_processes: bool = False

    #: Filled in on the node before the task runs: {task_name: [Result, ...]} of every task that ran before.
    previous_steps: dict[str, list[Any]] = {}

    #: Paths or glob patterns (absolute, ``~``, or relative to the run's work folder on the node) of
    #: files this task leaves for the user; they come home under nodes/<node>/artifacts/<task>/.
    artifacts: list[str] = []

    #: Set on the node before the task runs (also $UNICORN_ARTIFACTS): a folder whose files come home.
    artifacts_dir: str | None = None

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        """A class shaped like a task counts as one (netunicorn's Task, and with it its library's
        tasks): it goes into pipelines and graphs as it is, without this module knowing it."""
        return True if cls is Task and _shaped_like_task(subclass) else _AS_USUAL

    def __new__(cls, *args: object, **kwargs: object) -> Task:
        # Set here rather than in __init__ so that a subclass that never calls
        # super().__init__() still has a name and its own copy of requirements.
        instance = super().__new__(cls)
        instance.name = _new_name()
        instance.requirements = list(cls.requirements)
        instance.artifacts = list(cls.artifacts)
        return instance

    def __init__(self, name: str | None = None) -> None:
        """
        This is a constructor for the task. Any variables (state) that `run` method should use should be provided here.
        Please, do not forget to call `super().__init__()` in your implementation.
        :param name: the task's name (a UUID string by default); results are reported under it
        """
        if name is not None:
            self.name = str(name)

    def __call__(self) -> object:
        return self.run()

    def add_requirement(self, command: str) -> Task:
        """
        Add a requirement (a shell command run during deployment) to this task instance only.
        :param command: the shell command
        :return: the task itself, so calls can be chained
        """
        self.requirements = list(self.requirements)
        self.requirements.append(command)
        return self

    def add_artifact(self, pattern: str) -> Task:
        """
        Bring home the files at ``pattern`` (a path or a glob) when the pipeline ends, as this task's artifacts.
        :return: the task itself, so calls can be chained
        """
        return add_artifact(self, pattern)

    @abc.abstractmethod
    def run(self) -> object:
        """
        ## This method is to be overridden by your implementation. ##
        This is the entrypoint for the task.
        This method should never have any arguments except `self`. Any arguments that task would use for execution
        should be provided to the constructor and used later by this method.
        This method will always return a Result object. If this method doesn't return a Result object,
        it will be encapsulated into a Result object.
        :return: Result of the execution
        """
        raise NotImplementedError


class TaskDispatcher(abc.ABC):
    """
    This class is a wrapper for several tasks that are designed to implement the same functionality
    but depend on node attributes. Most often you either want to use a specific
    implementation for a specific architecture (e.g., different Tasks for Windows and Linux),
    or instantiate a task with some specific parameters for a specific node (e.g., node-specific IP address).
    You should implement your own TaskDispatcher class and override the dispatch method.

    Dispatching is done by calling the dispatch method that you should implement.
    """

    #: Paths or glob patterns of files the task it dispatches leaves (added to that task's own).
    artifacts: list[str] = []

    @classmethod
    def __subclasshook__(cls, subclass: type) -> bool:
        """A class with a ``dispatch`` method that is not a task counts as a dispatcher
        (netunicorn's TaskDispatcher, and with it its library's)."""
        shaped = callable(getattr(subclass, "dispatch", None)) and not _shaped_like_task(subclass)
        return True if cls is TaskDispatcher and shaped else _AS_USUAL

    def __new__(cls, *args: object, **kwargs: object) -> TaskDispatcher:
        instance = super().__new__(cls)
        instance.name = _new_name()
        instance.artifacts = list(cls.artifacts)
        return instance

    def __init__(self, name: str | None = None) -> None:
        """
        This is a constructor for the TaskDispatcher. Any variables (state) that `dispatch` should use
        should be provided here.
        :param name: the dispatcher's name (a UUID string by default)
        """
        if name is not None:
            self.name = str(name)

    @abc.abstractmethod
    def dispatch(self, node: Node) -> Task:
        """
        This method takes a node and should return and instance of the task that is designed to be executed on this node.
        The instance could depend on the node info (such as architecture, platform, properties, etc).
        :param node: Node object
        :return: Task object
        """
        raise NotImplementedError

    def add_artifact(self, pattern: str) -> TaskDispatcher:
        """
        Bring home the files at ``pattern`` (a path or a glob) as the artifacts of the task this dispatches.
        :return: the dispatcher itself, so calls can be chained
        """
        return add_artifact(self, pattern)


TaskElementT = TypeVar("TaskElementT")


def add_artifact(element: TaskElementT, *patterns: str) -> TaskElementT:
    """Declare files a task (or the task a TaskDispatcher gives) leaves at fixed paths: they come home
    under nodes/<node>/artifacts/<task>/. Takes netunicorn's tasks and dispatchers too (netunicorn-library's
    ``StartCapture("/tmp/capture.pcap", ...)``), which have no ``add_artifact`` method; returns ``element``."""
    element.artifacts = [*(getattr(element, "artifacts", None) or []), *map(str, patterns)]  # type: ignore[attr-defined]
    cls = type(element)
    if hasattr(element, "dispatch") and TaskDispatcher not in cls.__mro__ and not getattr(cls, "_declares", False):
        # netunicorn's Deployment dispatches by itself: its dispatch must hand the files on
        element.__class__ = _declaring(cls)
    return element


def with_declared(task: Task, declared: list[str]) -> Task:
    """``task`` with ``declared`` added to its artifacts (each once); the task's own list is not changed in place."""
    own = list(getattr(task, "artifacts", None) or [])
    if any(pattern not in own for pattern in declared):
        task.artifacts = own + [pattern for pattern in declared if pattern not in own]
    return task


_DECLARING: dict[type, type] = {}
#: how a declaring dispatcher pickles: as ``_redeclared(its class, its state)``
_Reduced = tuple[Callable[[type, dict[str, object]], object], tuple[type, dict[str, object]]]


def _declaring(cls: type[Any]) -> type:
    """A subclass of a foreign (netunicorn) dispatcher class whose dispatch gives its task the declared files."""
    if cls not in _DECLARING:
        def dispatch(self: object, node: Node) -> Task:
            return with_declared(cls.dispatch(self, node), list(getattr(self, "artifacts", None) or []))

        def __reduce_ex__(self: object, protocol: int) -> _Reduced:  # noqa: N807 (copied and pickled as the original class)
            return _redeclared, (cls, self.__dict__)

        _DECLARING[cls] = type(cls.__name__, (cls,), {
            "dispatch": dispatch, "__reduce_ex__": __reduce_ex__, "_declares": True,
            "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return _DECLARING[cls]


def _redeclared(cls: type, state: dict[str, object]) -> object:
    """A foreign dispatcher with declared artifacts, copied or unpickled."""
    element: object = object.__new__(cls)
    element.__dict__.update(state)
    element.__class__ = _declaring(cls)
    return element


TaskElement = Task | TaskDispatcher  # what a pipeline stage holds
