"""A campaign's folder: the one owner of its paths, its spec and its combinations' states.

``~/.unicorn-ansible/campaigns/<name>/`` (home.py's ``campaigns_dir``) holds::

    campaign.json            the spec (records.CampaignSpec): experiment, parameters, repeat, inventory
    .campaign.lock           taken (flock) while the spec is made or compared
    combinations/NNNN.json   combination NNNN's state (records.CombinationState); none yet: pending
    combinations/NNNN.lock   taken (flock, without waiting) by the sweep process running combination
                             NNNN, for as long as it plays its run: a second sweep skips it; the kernel
                             lets go of it when that process dies, kill -9 included
    report.html              ``unicorn-ansible campaign NAME --report``

The runs themselves are ordinary runs in ``runs/`` (``NAME-0001``...). Every file here is
written whole (rundir's ``write_json``) and read through the records' ``from_untrusted``.
Like run folders, the folder and its files are the user's alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..engine.rundir import read_json, write_json
from ..errors import UntrustedDataError, UsageError
from ..home import campaigns_dir, make_private_dir, private_files
from .plan import number_width, run_name
from .records import CAMPAIGN_NAME, CampaignSpec, CombinationState

SPEC = "campaign.json"
LOCK = ".campaign.lock"
COMBINATIONS = "combinations"
REPORT = "report.html"


def check_campaign_name(name: str) -> str:
    if not CAMPAIGN_NAME.match(name or ""):
        raise UsageError(f"campaign name {name!r} is not allowed; use letters, digits, '.', '_' and '-' "
                         "(up to 80 characters, starting with a letter or digit)")
    return name


@dataclass(frozen=True)
class CampaignDir:
    """One campaign's folder: its paths, its spec, its combinations' states and locks."""

    path: Path

    @classmethod
    def named(cls, name: str) -> CampaignDir:
        return cls(campaigns_dir() / check_campaign_name(name))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def spec_file(self) -> Path:
        return self.path / SPEC

    @property
    def report_file(self) -> Path:
        return self.path / REPORT

    @property
    def combinations_dir(self) -> Path:
        return self.path / COMBINATIONS

    def exists(self) -> bool:
        return self.spec_file.is_file()

    def _file(self, spec: CampaignSpec, index: int, suffix: str) -> Path:
        return self.combinations_dir / f"{index:0{number_width(spec.count)}d}{suffix}"

    # -- the spec ----------------------------------------------------------------------
    def spec(self) -> CampaignSpec:
        """The campaign's spec; a UsageError if there is no such campaign."""
        if not self.exists():
            raise UsageError(f"no campaign named {self.name}; see `unicorn-ansible campaign` for the campaigns")
        return CampaignSpec.from_untrusted(read_json(self.spec_file), str(self.spec_file))

    def open(self, spec: CampaignSpec) -> CampaignSpec:
        """The campaign of ``spec``: made if new, else the one kept, which must say the same
        (a UsageError naming what differs: a campaign is continued by the same command)."""
        make_private_dir(self.combinations_dir)
        with self._locked(self.path / LOCK):
            if not self.exists():
                write_json(self.spec_file, spec.to_json())
                return spec
            kept = self.spec()
            differences = kept.differences(spec)
            if differences:
                raise UsageError(f"campaign {self.name} was started otherwise ({'; '.join(differences)}); "
                                 "continue it with the command that started it, or choose another --name")
            return kept

    # -- the combinations' states ------------------------------------------------------
    def state(self, spec: CampaignSpec, index: int) -> CombinationState:
        """Combination ``index``'s state (pending while it has none)."""
        path = self._file(spec, index, ".json")
        raw = read_json(path)
        if raw is None:
            if path.exists():
                raise UntrustedDataError(f"{path} is not a readable campaign file (not a JSON object); "
                                         "delete it to run that combination again")
            return CombinationState(index)
        return CombinationState.from_untrusted(raw, str(path), index, run_name(spec, index, 1))

    def states(self, spec: CampaignSpec) -> dict[int, CombinationState]:
        return {index: self.state(spec, index) for index in range(1, spec.count + 1)}

    def save(self, spec: CampaignSpec, state: CombinationState) -> None:
        write_json(self._file(spec, state.index, ".json"), state.to_json())

    @contextlib.contextmanager
    def claimed(self, spec: CampaignSpec, index: int) -> Iterator[bool]:
        """Hold combination ``index``'s lock if no other process holds it: yields whether this one does."""
        with private_files(), open(self._file(spec, index, ".lock"), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    @contextlib.contextmanager
    def _locked(path: Path) -> Iterator[None]:
        with private_files(), open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def campaign_names() -> list[str]:
    """The campaigns in the home folder, by name."""
    folder = campaigns_dir()
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if CampaignDir(path).exists() and not os.path.islink(path))
