"""A client for cache-node clusters: ``from cache.client import CacheClient, CacheClientConfig``."""

from cache.client import CacheClient, CacheClientConfig, ClusterStatus, Member, NodeStats, SyncCacheClient
from cache.errors import (
    CacheError,
    ClientClosed,
    InvalidConfiguration,
    InvalidRequest,
    NoReachableNode,
    ServerError,
    Timeout,
    Unavailable,
)

__version__ = "0.11.0"

__all__ = [
    "CacheClient",
    "CacheClientConfig",
    "CacheError",
    "ClientClosed",
    "ClusterStatus",
    "InvalidConfiguration",
    "InvalidRequest",
    "Member",
    "NoReachableNode",
    "NodeStats",
    "ServerError",
    "SyncCacheClient",
    "Timeout",
    "Unavailable",
]
