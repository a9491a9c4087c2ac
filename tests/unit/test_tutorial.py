"""Every example of netunicorn's tasks-and-dispatchers tutorial, with `from unicorn_ansible import ...`
in place of the netunicorn.base imports, prints what the tutorial prints.

Each example's code is executed verbatim (imports swapped) in a fresh namespace named
``__main__``, as in the notebook, so reprs read ``<__main__.X object at 0x...>``.
"""

from __future__ import annotations

import pydoc
import re
import textwrap

import pytest

from unicorn_ansible import Task, TaskDispatcher


def run(code: str, capsys: pytest.CaptureFixture, namespace: dict | None = None) -> str:
    scope = namespace if namespace is not None else {"__name__": "__main__"}
    exec(compile(textwrap.dedent(code), "<tutorial>", "exec"), scope)
    return capsys.readouterr().out


IN_2 = """
from unicorn_ansible import Task

class SimpleTask(Task):
    def __init__(self, some_parameter: int):
        self.some_parameter = some_parameter
        super().__init__()

    def run(self):
        return self.some_parameter
"""

IN_3 = """
from unicorn_ansible import Task

class FileUploadTask(Task):
    \"\"\"Uploads some file to some endpoint\"\"\"
    def __init__(self, endpoint: str, filename: str):
        self.endpoint = endpoint
        self.filename = filename
        super().__init__()

    def run(self):
        \"\"\"Implementation omitted\"\"\"
        pass


class PingTask(Task):
    \"\"\"Ping address count times\"\"\"

    def __init__(self, address: str, count: int):
        if count < 1:
            raise ValueError("Parameter count should be positive")
        self.address = address
        self.count = count
        super().__init__()

    def run(self):
        \"\"\"Implementation omitted\"\"\"
        pass


from datetime import datetime
class SleepAndFailTask(Task):
    \"\"\"Sleep until some date and then raise an exception\"\"\"
    def __init__(self, sleep_until: datetime, exception: Exception):
        if sleep_until < datetime.now():
            raise ValueError("Parameter sleep_until should be in future")
        self.sleep_until = sleep_until
        self.exception = exception
        super().__init__()

    def run(self):
        \"\"\"Implementation omitted\"\"\"
        pass
"""

IN_4 = """
import time
from unicorn_ansible import Task

class SleepTask(Task):
    def __init__(self, seconds: int):
        assert seconds > 0
        self.seconds = seconds
        super().__init__()

    def run(self):
        time.sleep(self.seconds)
        return "Done!"


class OSPleaseRunMySuperCommandTask(Task):
    def __init__(self, super_command: str):
        self.super_command = super_command
        super().__init__()

    def run(self):
        print("please")
        os.system(self.super_command)
"""

IN_5 = """
from returns.result import Result, Success, Failure
from returns.pipeline import is_successful

# the same as:
from unicorn_ansible import Result, Success, Failure, is_successful

successful_object: Success[str] = Success("some value")
another_successful_object: Success[dict] = Success({'my_data': 'data'})
failed_object: Failure[str] = Failure('meh')

for obj in [successful_object, another_successful_object, failed_object]:
    print(f"{obj} is successful: {is_successful(obj)}")
    if is_successful(obj):
        print(f"{obj} stores some value inside: {obj.unwrap()}")
    else:
        print(f"{obj} stores some error inside: {obj.failure()}")
"""

OUT_5 = """<Success: some value> is successful: True
<Success: some value> stores some value inside: some value
<Success: {'my_data': 'data'}> is successful: True
<Success: {'my_data': 'data'}> stores some value inside: {'my_data': 'data'}
<Failure: meh> is successful: False
<Failure: meh> stores some error inside: meh
"""

IN_6 = """
from unicorn_ansible import Success, Failure

results = [
    Success("Started PCAP capture"),
    [
        Success("Ping to 8.8.8.8 finished"),
        Success("Pentagon is hacked"),
    ],
    Success("Finished PCAP capture"),
    Failure("Failed to upload files to the server due to incorrect Moon phase. Error: ...")
]

print(results)
"""

OUT_6 = ("[<Success: Started PCAP capture>, [<Success: Ping to 8.8.8.8 finished>, <Success: Pentagon is hacked>], "
         "<Success: Finished PCAP capture>, <Failure: Failed to upload files to the server due to incorrect Moon "
         "phase. Error: ...>]\n")

IN_7 = """
from unicorn_ansible import Task

class MyNumpyTask(Task):
    requirements = ['pip install numpy']

    def __init__(self):
        super().__init__()

    def run(self):
        import numpy as np
        return np.zeroes((3, 3))
"""

IN_8 = """
from unicorn_ansible import Task

class WriteToFileTask(Task):
    requirements = [
        'mkdir /tmp/my_folder',
        'touch /tmp/my_folder/somefile'
    ]
    ...

class WriteToAnotherFileTask(Task):
    requirements = [
        'rm -rf /tmp/*',
        'mkdir /tmp/data',
    ]
    ...
"""

IN_9 = """
from unicorn_ansible import Task
from unicorn_ansible import Pipeline, Experiment
from unicorn_ansible import Node

class WriteToTmp(Task):
    requirements = [
        'mkdir /tmp/mydata'
    ]

    def run(self):
        return

# creating dummy pipeline, node, and experiment to show the consequences
pipeline = Pipeline().then(WriteToTmp()).then(WriteToTmp()).then(WriteToTmp())
dummy_node = Node(name="dummy", properties={})
experiment = Experiment().append(dummy_node, pipeline)

# let's print what the system would execute on deployment stage in the node
# hint: second command would fail with `mkdir: cannot create directory ‘/tmp/mydata’: File exists`
print(experiment.deployment_map[0].environment_definition.commands)
"""

IN_10 = """
from unicorn_ansible import Task
from unicorn_ansible import Pipeline, Experiment
from unicorn_ansible import Node

class WriteToTmp(Task):
    def run(self):
        return

# creating dummy pipeline, node, and experiment to show the consequences
pipeline = (
    Pipeline()
    .then(WriteToTmp().add_requirement('mkdir /tmp/mydata'))
    .then(WriteToTmp())
    .then(WriteToTmp())
)
dummy_node = Node(name="dummy", properties={})
experiment = Experiment().append(dummy_node, pipeline)

# let's print what the system would execute on deployment stage in the node
# It will work correctly during deployment
print(experiment.deployment_map[0].environment_definition.commands)
"""

IN_12 = """
from unicorn_ansible import Task, TaskDispatcher
from unicorn_ansible import Node


class MyCoolTask(TaskDispatcher):
    def __init__(self, param1: str, param2: list):
        # init saves parameters that can be used in dispatch method
        self.param1 = param1
        self.param2 = param2
        super().__init__()

    def dispatch(self, node: Node) -> Task:
        # dispatch method receives Node and should return Task instance for the given node
        # if some_condition:
        #    return SomeTaskImplementation(...)
        pass
"""

IN_13 = """
import os
from unicorn_ansible import Task, TaskDispatcher
from unicorn_ansible import Node
from unicorn_ansible import Pipeline, Experiment
import cloudpickle

class RemoveFileLinuxImplementation(Task):
    def __init__(self, filename: str):
        self.filename = filename
        super().__init__()

    def run(self):
        os.system(f'rm {self.filename}')


class RemoveFileWindowsImplementation(Task):
    def __init__(self, filename: str):
        self.filename = filename
        super().__init__()

    def run(self):
        os.system(f'Remove-Item {self.filename}')

# yes yes, 'rm' is also alias for Remove-Item in Powershell, so in this particular case it would work
# but this is just an example :)

class RemoveFile(TaskDispatcher):
    def __init__(self, filename: str):
        self.filename = filename

    def dispatch(self, node: Node) -> Task:
        if node.properties.get("os_family", "").lower() == "linux":
            return RemoveFileLinuxImplementation(self.filename)
        else:
            return RemoveFileWindowsImplementation(self.filename)

# let's look at this
pipeline = Pipeline().then(RemoveFile('somefile'))

win_node = Node(name='dummy windows node', properties={'os_family': 'Windows'})
lin_node = Node(name='dummy linux node', properties={'os_family': 'Linux'})

experiment = (
    Experiment()
    .append(win_node, pipeline)
    .append(lin_node, pipeline)
)

# pipelines are already serialzied and ready to be executed, so let's manually deserialize them to check
# you usually don't need to do it, it's just for demonstration
win_node_pipeline = cloudpickle.loads(experiment.deployment_map[0].pipeline)
lin_node_pipeline = cloudpickle.loads(experiment.deployment_map[1].pipeline)

# you can see that though pipeline was the same, tasks are different
print(win_node_pipeline)
print(lin_node_pipeline)
"""

IN_14 = """
import os
from unicorn_ansible import Task, TaskDispatcher
from unicorn_ansible import Node
from unicorn_ansible import Pipeline, Experiment
import cloudpickle

class SayIPImplementation(Task):
    def __init__(self, ip: str):
        self.ip = ip
        super().__init__()

    def run(self):
        print(f'My IP is: {self.ip}')


class SayIP(TaskDispatcher):
    def dispatch(self, node: Node) -> Task:
        ip = node.properties['ipv4']
        return SayIPImplementation(ip)


pipeline = Pipeline().then(SayIP())

node1 = Node(name='Dummy1', properties={'ipv4': '192.168.0.1'})
node2 = Node(name='Dummy2', properties={'ipv4': '192.168.0.2'})

experiment = (
    Experiment()
    .append(node1, pipeline)
    .append(node2, pipeline)
)

# pipelines are already serialzied and ready to be executed, so let's manually deserialize them to check
# you usually don't need to do it, it's just for demonstration
node1_pipeline = cloudpickle.loads(experiment.deployment_map[0].pipeline)
node2_pipeline = cloudpickle.loads(experiment.deployment_map[1].pipeline)

# you can see that though pipeline was the same, tasks are initialized differently
node1_pipeline.tasks[0][0].run()
node2_pipeline.tasks[0][0].run()
"""


def test_in_1_import(capsys: pytest.CaptureFixture) -> None:
    assert run("from unicorn_ansible import Task\n", capsys) == ""


def test_in_2_simple_task(capsys: pytest.CaptureFixture) -> None:
    scope = {"__name__": "__main__"}
    run(IN_2, capsys, scope)
    task = scope["SimpleTask"](7)
    assert task.run() == 7 and isinstance(task.name, str)


def test_in_3_constructors_check_on_the_client(capsys: pytest.CaptureFixture) -> None:
    scope = {"__name__": "__main__"}
    run(IN_3, capsys, scope)
    with pytest.raises(ValueError, match="count should be positive"):
        scope["PingTask"]("8.8.8.8", 0)
    with pytest.raises(ValueError, match="sleep_until should be in future"):
        scope["SleepAndFailTask"](scope["datetime"](2000, 1, 1), RuntimeError())
    assert scope["FileUploadTask"]("http://x", "f").run() is None


def test_in_4_run_methods(capsys: pytest.CaptureFixture) -> None:
    scope = {"__name__": "__main__"}
    run(IN_4, capsys, scope)
    with pytest.raises(AssertionError):
        scope["SleepTask"](0)
    assert scope["SleepTask"](1).seconds == 1


def test_in_5_results(capsys: pytest.CaptureFixture) -> None:
    assert run(IN_5, capsys) == OUT_5


def test_in_6_typical_result(capsys: pytest.CaptureFixture) -> None:
    assert run(IN_6, capsys) == OUT_6


def test_in_7_class_requirements(capsys: pytest.CaptureFixture) -> None:
    scope = {"__name__": "__main__"}
    run(IN_7, capsys, scope)
    assert scope["MyNumpyTask"]().requirements == ["pip install numpy"]


def test_in_8_contradicting_requirements_are_all_kept(capsys: pytest.CaptureFixture) -> None:
    scope = {"__name__": "__main__"}
    run(IN_8, capsys, scope)
    assert scope["WriteToAnotherFileTask"].requirements == ["rm -rf /tmp/*", "mkdir /tmp/data"]


def test_in_9_requirements_of_every_instance(capsys: pytest.CaptureFixture) -> None:
    assert run(IN_9, capsys) == "['mkdir /tmp/mydata', 'mkdir /tmp/mydata', 'mkdir /tmp/mydata']\n"


def test_in_10_add_requirement_to_one_instance(capsys: pytest.CaptureFixture) -> None:
    assert run(IN_10, capsys) == "['mkdir /tmp/mydata']\n"


def test_in_11_help_task(capsys: pytest.CaptureFixture) -> None:
    text = pydoc.render_doc(Task, renderer=pydoc.plaintext)
    for line in (
        "This is a base class for all tasks. All new task classes should inherit from this class.",
        "Task entrypoint is the run() method.",
        "TaskDispatcher can be used for selecting a specific task for the given architecture, platform, or combination.",
        "Task always returns a Result object.",
        "- If the task's `run` method returns Result object by itself, you'll receive this Result object",
    ):
        assert line in text


def test_in_12_dispatcher_skeleton(capsys: pytest.CaptureFixture) -> None:
    scope = {"__name__": "__main__"}
    run(IN_12, capsys, scope)
    dispatcher = scope["MyCoolTask"]("a", [1])
    assert dispatcher.param1 == "a" and isinstance(dispatcher.name, str)


def test_in_13_different_implementations(capsys: pytest.CaptureFixture) -> None:
    lines = run(IN_13, capsys).splitlines()
    def pattern(kind: str) -> str:
        return (r"Pipeline\(([0-9a-f-]{36})\): \[\[<__main__\.RemoveFile" + kind
                + r"Implementation object at 0x[0-9a-f]+>\]\]")

    win, lin = re.fullmatch(pattern("Windows"), lines[0]), re.fullmatch(pattern("Linux"), lines[1])
    assert win and lin, lines
    assert win.group(1) == lin.group(1)  # one pipeline, dispatched twice


def test_in_14_different_parameters(capsys: pytest.CaptureFixture) -> None:
    assert run(IN_14, capsys) == "My IP is: 192.168.0.1\nMy IP is: 192.168.0.2\n"


def test_in_15_help_task_dispatcher() -> None:
    text = pydoc.render_doc(TaskDispatcher, renderer=pydoc.plaintext)
    assert "class TaskDispatcher(abc.ABC)" in text
    for line in (
        "This class is a wrapper for several tasks that are designed to implement the same functionality",
        "You should implement your own TaskDispatcher class and override the dispatch method.",
        "Dispatching is done by calling the dispatch method that you should implement.",
        "dispatch(self, node: 'Node') -> 'Task'",
        "This method takes a node and should return and instance of the task that is designed to be executed on this node.",
    ):
        assert line in text, line
