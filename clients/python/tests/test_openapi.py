"""docs/openapi.yaml: a valid description, and every answer of a real node conforms to it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from conftest import ROOT, Cluster

SPEC = ROOT / "docs" / "openapi.yaml"


def test_the_description_is_valid_openapi() -> None:
    document, _ = read_from_filename(str(SPEC))
    validate(document)


async def test_schemathesis_finds_nothing_against_a_real_node(cluster: Cluster, tmp_path: Path) -> None:
    # One node alone: POST /cluster/leave answers 409 there (nobody to hand keys to), so every
    # operation runs, none of them destructive.
    nodes = cluster.start(1)
    binary = Path(sys.executable).with_name("schemathesis")
    command = [
        str(binary if binary.exists() else shutil.which("schemathesis") or "schemathesis"),
        "run",
        str(SPEC),
        "--url",
        f"http://{nodes[0].address}",
        "--checks",
        "all",
        # A deadline in the past is schema-valid yet refused by design (408: the client gave up);
        # schemathesis would count that as a valid request rejected. Every write gets one far ahead.
        "--header",
        "X-Cache-Deadline: 7258118400000",
        # The cluster page's feed is an endless stream by design: no answer ever ends.
        "--exclude-path",
        "/ui/events",
        "--max-examples",
        "100",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    run = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    # The node is still there after everything schemathesis sent.
    assert nodes[0].process.poll() is None
    assert nodes[0].get_json("/health")["status"] == "ok"


def test_what_schemathesis_found_stays_fixed(cluster: Cluster) -> None:
    node = cluster.start(1)[0]

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://{node.address}{path}", timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert status("/cluster/plan?remove=") == 200  # naming nobody: an empty plan, not a 400
    assert status("/cluster/plan?add=DyT%40%F0%9F%8F%BB") == 200  # "@" then a combining mark
    assert status("/cluster/plan?remove=stranger") == 404
    assert status("/cluster/plan?add=n0") == 409
    assert status("/cluster/plan?add=%E2%9C%93") == 400  # not a member name
