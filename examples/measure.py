"""A requirement, a parallel stage, and a TaskDispatcher that reads host vars.

Each node gets a ``target`` host var (an address to probe; the example lab in
inventories/examples/ sets it per group and per host) — the dispatcher builds
the node's task from it. Requirements run in
the node's own virtual environment, so what they install is importable in run().

    unicorn-ansible run examples/measure.py -i inventories/examples
"""

import time

from unicorn_ansible import Experiment, Failure, Node, Pipeline, Success, Task, TaskDispatcher


class WriteMarker(Task):
    # runs during deployment, in the node's environment
    requirements = ["python -c \"import sys; print('deploying with', sys.prefix)\" > env-marker.txt"]

    def run(self):
        import sys

        return sys.prefix  # the node's virtual environment


class Probe(Task):
    def __init__(self, target: str, attempts: int):
        self.target = target
        self.attempts = attempts
        super().__init__(name=f"probe-{target}")

    def run(self):
        import socket

        samples = []
        for _ in range(self.attempts):
            start = time.perf_counter()
            try:
                socket.getaddrinfo(self.target, None)
            except OSError as exc:
                return Failure(f"cannot resolve {self.target}: {exc}")
            samples.append((time.perf_counter() - start) * 1000)
        return Success({"target": self.target, "min_ms": round(min(samples), 3)})


class ProbeTarget(TaskDispatcher):
    """Probe the node's own `target` host var (default: localhost)."""

    def __init__(self, attempts: int = 3):
        self.attempts = attempts
        super().__init__()

    def dispatch(self, node: Node) -> Task:
        return Probe(node["target"] or "localhost", self.attempts)


class Sleep(Task):
    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(name=f"sleep-{seconds}")

    def run(self):
        time.sleep(self.seconds)
        return self.seconds


def experiment(nodes):
    pipeline = (
        Pipeline()
        .then(WriteMarker(name="environment"))
        .then([Sleep(0.2), Sleep(0.3), ProbeTarget()])  # one stage: these run in parallel
    )
    return Experiment().map(pipeline, nodes.take(len(nodes)))
