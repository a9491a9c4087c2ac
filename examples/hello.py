"""Hello world: one task on every node of the inventory (the local machine by default).

    unicorn-ansible run examples/hello.py
"""

from unicorn_ansible import Experiment, Pipeline, Task


class SayHello(Task):
    def run(self):
        import platform
        import socket

        print("saying hello")  # captured in this task's log
        return f"Hello from {socket.gethostname()} (Python {platform.python_version()})"


def experiment(nodes):
    pipeline = Pipeline().then(SayHello(name="hello"))
    return Experiment().map(pipeline, nodes.take(len(nodes)))
