"""The client's tests run against real nodes: the fixtures live in ``node_processes``."""

from node_processes import ROOT, Cluster, Node, cluster

__all__ = ["ROOT", "Cluster", "Node", "cluster"]
