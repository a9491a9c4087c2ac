"""A run's files carry no controller secrets (and are private: see home.py).

ansible-runner saves the command it ran with the whole controller
environment (``artifacts/<ident>/command``); the variables whose names look secret (the
inventory's rule: AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, ...) are replaced there by a note as
soon as ansible-playbook has started, and again when it ends. ansible-playbook itself keeps
them: a dynamic inventory may need them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..inventory import LEFT_OUT, is_secret_name
from .rundir import read_json, write_atomic


def without_secrets(environment: dict[str, object]) -> dict[str, object]:
    return {name: LEFT_OUT if is_secret_name(name) else value for name, value in environment.items()}


def scrub_runner_records(run_dir: Path) -> None:
    """Rewrite ansible-runner's saved commands (``artifacts/*/command``) without secret values."""
    for path in Path(run_dir).glob("artifacts/*/command"):
        saved = read_json(path)
        if saved is not None and isinstance(saved.get("env"), dict):
            saved["env"] = without_secrets(saved["env"])
            write_atomic(path, json.dumps(saved, ensure_ascii=False))


def scrub_once_started(run_dir: Path) -> Callable[[dict[str, Any], object], None]:
    """An ansible-runner ``status_handler``: scrubs the saved command once the play is running."""

    def handler(status: dict[str, Any], runner_config: object = None) -> None:
        if status.get("status") == "running":
            scrub_runner_records(run_dir)

    return handler
