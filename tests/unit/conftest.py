from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_home(isolated_home: Path) -> Path:
    return isolated_home
