"""The transfer benchmark's baseline: the same 100 MB made on the host, but only its size returned."""

from unicorn_ansible import Experiment, Pipeline, Task


class Big(Task):
    def run(self):
        import os

        return len(os.urandom(100 * 1024 * 1024))


def experiment(nodes):
    return Experiment().map(Pipeline().then(Big(name="big")), nodes.take(1))
