"""Makes the README's screenshots of the cluster page: three real nodes under a steady load, then
one of them killed. ``make ui-screenshots`` runs it (release nodes; output in docs/images).

It is not a test: a test of the page is ``test_cluster_page.py``.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from conftest import ROOT, chromium_binary
from node_processes import Cluster


def load(addresses: list[str], stop: threading.Event) -> None:
    """Puts and gets (a fifth of them misses) on every node, a few hundred a second."""
    generator = random.Random(7)
    while not stop.is_set():
        address = generator.choice(addresses)
        key = f"user:{generator.randrange(2000)}"
        try:
            if generator.random() < 0.3:
                body = json.dumps({"key": key, "value": "x" * generator.randrange(10, 400), "ttl": 600}).encode()
                request = urllib.request.Request(f"http://{address}/put", data=body, method="PUT")
                urllib.request.urlopen(request, timeout=2).close()
            else:
                urllib.request.urlopen(f"http://{address}/get/{key}", timeout=2).close()
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.002)


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs/images"
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        cluster = Cluster(Path(directory))
        try:
            nodes = cluster.start(3, MAX_MEMORY_MB="64")
            stop = threading.Event()
            workers = [threading.Thread(target=load, args=([node.address for node in nodes], stop)) for _ in range(4)]
            for worker in workers:
                worker.start()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium_binary(), args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://{nodes[0].address}/ui")
                time.sleep(60)
                page.screenshot(path=str(output / "cluster-page.png"), full_page=True)
                nodes[2].kill()
                page.locator('#members-body tr[data-member="n2"][data-status="dead"]').wait_for(timeout=20_000)
                time.sleep(2)
                page.screenshot(path=str(output / "cluster-page-member-down.png"), full_page=True)
                browser.close()
            stop.set()
            for worker in workers:
                worker.join()
        finally:
            cluster.stop()
    print(f"screenshots in {output}")


if __name__ == "__main__":
    main()
