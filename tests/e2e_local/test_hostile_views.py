"""A host's text never reaches the user's terminal as a command (issue 28, item 3).

A task's name, its value, its error, its log and a requirement's output hold terminal control
sequences (a new window title ``ESC]0;...BEL``, a cleared screen ``ESC[2J``, a red fake line
``ESC[31m``, the one-byte C1 CSI, NUL, CR): every view of the run (the run's own live lines and
summary, ``results``, ``results --json``, ``logs``, ``status``, ``report``, ``artifacts``, the
errors) writes them escaped, and nothing raw reaches stdout or stderr.
"""

from __future__ import annotations

import json

from .conftest import Env, node

#: what a hostile host writes: title, clear screen, colour, C1 CSI, NUL, carriage return
SEQUENCES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mFAKE\x1b[0m\x9b31m\x00\r"
RAW = ("\x1b", "\x07", "\x9b", "\x00", "\r")

EXPERIMENT = f'''
import os, sys
from unicorn_ansible import Experiment, Pipeline, Task

BAD = {SEQUENCES!r}

class Value(Task):
    def run(self):
        print("log " + BAD)
        print("err " + BAD, file=sys.stderr)
        with open(os.path.join(os.environ["UNICORN_ARTIFACTS"], "file" + BAD.replace("\\x00", "") + ".txt"), "w") as out:
            out.write("x")
        return {{"k" + BAD: "v" + BAD}}

class Boom(Task):
    def run(self):
        raise RuntimeError("boom " + BAD)

class Deployed(Task):
    requirements = ["printf 'req \\\\033]0;pwned\\\\007\\\\033[2J\\\\033[31mFAKE\\\\n'; exit 3"]

    def run(self):
        return 1

def experiment(nodes):
    good, bad = nodes.take(2)
    return (Experiment()
            .append(good, Pipeline().then(Value(name="value" + BAD)).then(Boom(name="boom" + BAD)))
            .append(bad, Pipeline().then(Deployed(name="deployed"))))
'''


def _clean(done: object, what: str) -> None:
    for stream in ("stdout", "stderr"):
        text = getattr(done, stream)
        raw = [c for c in RAW if c in text]
        assert not raw, f"{what}: {stream} holds raw {raw!r}:\n{text[-2000:]}"
        assert "Traceback" not in text or what.startswith("logs"), f"{what}: {stream}:\n{text[-2000:]}"


def test_control_sequences_from_a_host_are_escaped_in_every_view(env: Env) -> None:
    inventory = env.local_inventory(["views-a", "views-b"])
    env.write("views.py", EXPERIMENT)
    ran = env.cli("run", "views.py", "-i", str(inventory), "--name", "views", check=1)
    _clean(ran, "run")
    assert "boom\\x1b]0;pwned\\x07\\x1b[2J" in ran.stdout, ran.stdout  # escaped, and still there to read
    for args in (["results", "views"], ["results", "views", "--json"], ["logs", "views"],
                 ["logs", "views", "--node", "views-b"], ["status", "views"], ["status", "views", "--json"],
                 ["artifacts", "views"], ["report", "views"]):
        _clean(env.cli(*args), " ".join(args))
    logs = env.cli("logs", "views", check=0).stdout
    assert "log \\x1b]0;pwned\\x07" in logs and "RuntimeError: boom \\x1b[2J" not in logs
    assert "RuntimeError: boom \\x1b]0;pwned" in logs and "req \\x1b]0;pwned" in logs
    results = json.loads(env.cli("results", "views", "--json", check=1).stdout)
    good = node(results, "views-a")
    assert "value" + SEQUENCES in good["tasks"]  # JSON keeps the text whole (escaped by JSON itself)
    assert "req \x1b]0;pwned" in node(results, "views-b")["error"]
    report = (env.home / "runs" / "views" / "report.html").read_text()
    assert not [c for c in RAW if c in report] and "\\x1b]0;pwned" in report
    # a node's error, and the run's, as a crafted run folder holds them
    record = env.home / "runs" / "views" / "run.json"
    record.write_text(json.dumps(dict(json.loads(record.read_text()), error="ended " + SEQUENCES)))
    _clean(env.cli("status", "views"), "status of a run whose error holds control sequences")
    crafted = json.loads(record.read_text())
    crafted["executors"] = {"views-a": "views-a" + SEQUENCES, "views-b": "views-b"}  # a node's name as a host gives it
    record.write_text(json.dumps(crafted))
    for args in (["results", "views"], ["status", "views"], ["logs", "views"], ["report", "views"]):
        _clean(env.cli(*args), " ".join(args) + " with a node named with control sequences")
