"""The experiment the end-to-end benchmark runs: one task per node."""

from unicorn_ansible import Experiment, Pipeline, Task


class Measure(Task):
    def run(self):
        import socket

        return {"host": socket.gethostname(), "value": 42}


def experiment(nodes):
    return Experiment().map(Pipeline().then(Measure(name="measure")), nodes.take(len(nodes)))
