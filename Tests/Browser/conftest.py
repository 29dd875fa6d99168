"""Real cache-node processes (the Python client's test helpers) and a real browser.

The browser is Debian's chromium driven by PyPI's playwright; playwright's own browser download is
never used. ``$CHROMIUM`` names another binary.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
# The node processes are the Python client's test helpers: one way to start a cluster for all tests.
sys.path.insert(0, str(ROOT / "clients/python/tests"))

from node_processes import Cluster, Node, cluster  # noqa: E402

__all__ = ["ROOT", "Cluster", "Node", "browser", "chromium_binary", "cluster", "screenshots"]


def chromium_binary() -> str:
    candidate = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not candidate:
        pytest.skip("no chromium: apt-get install chromium (make test does)")
    return candidate


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # As root (CI), chromium runs only without its sandbox.
        launched = playwright.chromium.launch(executable_path=chromium_binary(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def screenshots() -> Path:
    """Where the test's screenshots go: ``$UI_SCREENSHOTS``, or beside make test's logs."""
    directory = Path(os.environ.get("UI_SCREENSHOTS") or ROOT / ".build/test-logs/ui")
    directory.mkdir(parents=True, exist_ok=True)
    return directory
