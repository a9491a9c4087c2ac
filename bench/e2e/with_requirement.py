"""One task with a requirement: the first run builds the node's environment, a re-run finds it ready."""

from unicorn_ansible import Experiment, Pipeline, Task


class Measure(Task):
    requirements = ["python -c 'import sys; print(sys.prefix)' > environment.txt"]

    def run(self):
        import os

        return open(os.path.join(os.environ["UNICORN_ENVIRONMENT"], "environment.txt")).read().strip()


def experiment(nodes):
    return Experiment().map(Pipeline().then(Measure(name="measure")), nodes.take(len(nodes)))
