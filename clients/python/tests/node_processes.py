"""Real cache-node processes for the tests: started on 127.0.0.1 with ephemeral ports, killed after.

The binary is ``$CACHE_NODE``, or the package's debug build (``swift build``), or its release build.
Shared by the client's tests (through ``conftest``) and the browser tests of ``Tests/Browser``.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def node_binary() -> Path:
    if os.environ.get("CACHE_NODE"):
        return Path(os.environ["CACHE_NODE"])
    for build in ("debug", "release"):
        candidate = ROOT / ".build" / build / "cache-node"
        if candidate.exists():
            return candidate
    pytest.skip("no cache-node binary: run `swift build` first (make test does)")


class Node:
    """One cache-node process."""

    def __init__(self, node_id: str, directory: Path, settings: dict[str, str]) -> None:
        self.node_id = node_id
        self.log_path = directory / f"{node_id}.log"
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NODE_ID": node_id,
            "HOST": "127.0.0.1",
            "PORT": "0",
            "PEER_PORT": "0",
            "EVENT_LOOPS": "1",
            "WAL_DIR": str(directory / node_id),
            "GOSSIP_INTERVAL": "200ms",
            "HEARTBEAT_INTERVAL": "150ms",
            "FAILURE_TIMEOUT": "1500ms",
            "SWIFT_BACKTRACE": "enable=no",
            **settings,
        }
        self.environment = environment
        self.scheme = "https" if "TLS_CERT_FILE" in settings else "http"
        self.port = 0
        self.peer_port = 0
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = open(self.log_path, "ab")
        process = subprocess.Popen([str(node_binary())], env=self.environment, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if '"msg":"listening"' in line:
                    fields = json.loads(line)
                    self.port = int(fields["port"])
                    self.peer_port = int(fields["peer_port"])
            if self.port and process.poll() is None:
                return process
            if process.poll() is not None:
                raise RuntimeError(f"{self.node_id} exited: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.node_id} did not start: {self.log_path.read_text()[-2000:]}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def get_json(self, path: str) -> dict[str, object]:
        # The tests' own reads of a TLS node do not check its certificate; the client's do.
        context = ssl._create_unverified_context() if self.scheme == "https" else None
        with urllib.request.urlopen(f"{self.scheme}://{self.address}{path}", timeout=5, context=context) as answer:
            document: dict[str, object] = json.load(answer)
            return document

    def ops(self, operation: str) -> int:
        ops = self.get_json("/stats")["ops"]
        assert isinstance(ops, dict)
        return int(ops[operation])

    def pause(self) -> None:
        """SIGSTOP, returning once the kernel shows the process stopped."""
        self.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state in ("T", "t"):
                return
            time.sleep(0.01)
        raise RuntimeError(f"{self.node_id} did not stop")

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        """Kills the process (if it runs) and starts it again on the same log, on new ports."""
        self.kill()
        self.process = self._spawn()


class Cluster:
    """Nodes seeded with the first, waiting until each sees all alive."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.nodes: list[Node] = []

    def start(self, count: int, **settings: str) -> list[Node]:
        for _index in range(count):
            node_settings = dict(settings)
            if self.nodes:
                node_settings.setdefault("SEEDS", f"127.0.0.1:{self.nodes[0].peer_port}")
            self.nodes.append(Node(f"n{len(self.nodes)}", self.directory, node_settings))
        self.wait_for_membership()
        return self.nodes

    def wait_for_membership(self, timeout: float = 30) -> None:
        expected = {node.node_id for node in self.nodes if node.process.poll() is None}
        if len(self.nodes) == 1:
            # A node alone: serving is enough (and /health needs no token).
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    if self.nodes[0].get_json("/health").get("status") == "ok":
                        return
                except OSError:
                    pass
                time.sleep(0.05)
            raise RuntimeError("the node did not serve")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                views = [self._view(node) for node in self.nodes if node.process.poll() is None]
                # A member is listed alive as soon as it writes, but takes its share of the ring
                # only once this node has reached it: wait for the rings too, or a request sent
                # now can find a key's replicas still one short.
                if all(alive == expected and ring_members >= len(expected) for alive, ring_members, _ in views):
                    if len({ring_version for _, _, ring_version in views}) == 1:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"members {expected} not all alive with one ring")

    @staticmethod
    def _view(node: Node) -> tuple[set[str], int, str]:
        """The members `node` lists alive, how many own keys on its ring, and the ring's identity."""
        document = node.get_json("/cluster")
        members = document.get("members", [])
        assert isinstance(members, list)
        alive = {str(m["id"]) for m in members if m["status"] == "alive"}
        return alive, int(str(document.get("ring_members", 0))), str(document.get("ring_version", ""))

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with tempfile.TemporaryDirectory() as directory:
        running = Cluster(Path(directory))
        try:
            yield running
        finally:
            running.stop()
