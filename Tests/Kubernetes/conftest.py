"""The Kubernetes manifests' tests: the node processes are the Python client's test helpers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy/kubernetes"
sys.path.insert(0, str(ROOT / "clients/python/tests"))

from node_processes import Cluster, Node, cluster, node_binary  # noqa: E402

__all__ = ["MANIFESTS", "ROOT", "Cluster", "Node", "cluster", "node_binary"]
