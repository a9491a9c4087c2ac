"""A task returning 100 MB: how fast results come back."""

from unicorn_ansible import Experiment, Pipeline, Task


class Big(Task):
    def run(self):
        import os

        return os.urandom(100 * 1024 * 1024)


def experiment(nodes):
    return Experiment().map(Pipeline().then(Big(name="big")), nodes.take(1))
