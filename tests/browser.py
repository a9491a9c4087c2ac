"""Headless Chromium (Debian's chromium) for the report tests: the DOM after loading a page,
and a screenshot kept in test-artifacts/ for a person to look at."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("the report tests need Debian's chromium: apt-get install chromium (scripts/test.sh does)")
    return browser


def dom(page: Path, profile: Path) -> str:
    """The page's DOM as Chromium built it."""
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    return done.stdout


def screenshot(page: Path, profile: Path, name: str, height: int = 1000) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / name
    shot.unlink(missing_ok=True)
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    f"--window-size=1400,{height}", page.resolve().as_uri()], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    return shot


def outside_details(page_dom: str, text: str) -> bool:
    """Whether ``text`` (escaped as HTML) appears where a reader sees it without opening a <details>."""
    open_sections = re.sub(r"<details>.*?</details>", "", page_dom, flags=re.S)
    return html.escape(text, quote=False) in open_sections


def chart_points(page_dom: str, task: str, field: str, node: str) -> int:
    """How many points one node's series has in the chart of ``task`` and ``field``."""
    chart = re.search(rf'<svg class="chart"[^>]*data-task="{re.escape(task)}" data-field="{re.escape(field)}".*?</svg>',
                      page_dom, flags=re.S)
    assert chart, f"no chart of {task} {field}"
    series = re.search(rf'<g class="series" data-node="{re.escape(node)}">(.*?)</g>', chart.group(0), flags=re.S)
    assert series, f"no series of {node} in the chart of {task} {field}"
    return series.group(1).count('class="point"')


def artifact_links(page_dom: str) -> list[tuple[str, str]]:
    """(link text, href) of every artifact link."""
    return [(html.unescape(text), unquote(html.unescape(href)))
            for href, text in re.findall(r'<a class="artifact" href="([^"]*)">([^<]*)</a>', page_dom)]


def opened_text(target: Path, profile: Path) -> str:
    """What Chromium shows for a linked text file (its DOM holds the text in a <pre>)."""
    return html.unescape(re.sub(r"<[^>]+>", "", dom(target, profile)))
