"""What a node's work folder holds, read back for tests: state, journal records, both result shapes."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unicorn_ansible.node.files import read_json
from unicorn_ansible.node.journal import JournalEntry, iter_records, results_by_name, results_by_stage
from unicorn_ansible.node.protocol import JOURNAL, STATE


@dataclass
class NodeResults:
    state: dict[str, Any]
    records: list[JournalEntry]
    loads: Callable[[bytes], Any] = pickle.loads

    @classmethod
    def read(cls, workdir: str, loads: Callable[[bytes], Any] = pickle.loads) -> NodeResults:
        return cls(read_json(os.path.join(workdir, STATE)) or {},
                   list(iter_records(os.path.join(workdir, JOURNAL))), loads)

    @property
    def by_stage(self) -> list[Any]:
        return results_by_stage(self.records, self.loads)

    @property
    def by_name(self) -> dict[str, list[Any]]:
        return results_by_name(self.records, self.loads)
