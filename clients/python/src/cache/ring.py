"""Where keys live: the nodes' consistent-hash ring, written again in Python.

The same arithmetic as CacheCore's ``HashRing`` (Sources/CacheCore/Cluster/HashRing.swift), so that
the client sends each call to a key's first owner. ``tests/ring_vectors.json`` holds keys and
owners computed by the Swift side; the tests fail if the two ever disagree.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import xxhash

DEFAULT_VIRTUAL_NODES = 1024
"""Points per member on the ring (the nodes' default)."""

_KEY_SEED = 0x6B657973  # "keys": keys and points never share a hash input space


def key_position(key: bytes) -> int:
    """Where a key sits on the 64-bit circle."""
    return xxhash.xxh64_intdigest(key, seed=_KEY_SEED)


def _point_position(name: bytes, point: int) -> int:
    # A member's point: its name, a separator no name contains, and the point's number (u32 LE).
    return xxhash.xxh64_intdigest(name + b"\x00" + point.to_bytes(4, "little"), seed=0)


class HashRing:
    """Consistent hashing with virtual nodes over a set of member names.

    Each member owns ``virtual_nodes`` points on the circle; a key belongs to the first point at or
    after its own position, and its preference list is the first ``count`` distinct members met
    going round from there. The ring depends only on the set of members.
    """

    def __init__(self, members: Iterable[str], virtual_nodes: int = DEFAULT_VIRTUAL_NODES) -> None:
        if virtual_nodes <= 0:
            raise ValueError("a ring needs at least one point per member")
        # Sorted by UTF-8 bytes, as the nodes sort them.
        names = sorted({member.encode() for member in members})
        self.members: tuple[str, ...] = tuple(name.decode() for name in names)
        self.virtual_nodes = virtual_nodes
        points = sorted(
            (_point_position(name, point), index) for index, name in enumerate(names) for point in range(virtual_nodes)
        )
        self._positions = [position for position, _ in points]
        self._owners = [owner for _, owner in points]
        self.version = xxhash.xxh64_intdigest(b"".join(name + b"\x00" for name in names), seed=0)

    @property
    def version_hex(self) -> str:
        """The ring's identity as the ``x-ring-version`` header carries it (16 hex digits)."""
        return f"{self.version:016x}"

    def preference_list(self, key: bytes, count: int) -> list[str]:
        """The first ``count`` distinct members going round from ``key``: its replicas, first
        owner first (fewer when the ring has fewer members)."""
        if not self._positions or count <= 0:
            return []
        if len(self.members) == 1:
            return [self.members[0]]
        wanted = min(count, len(self.members))
        index = bisect.bisect_left(self._positions, key_position(key))
        if index == len(self._positions):
            index = 0
        found: list[int] = []
        while len(found) < wanted:
            owner = self._owners[index]
            if owner not in found:
                found.append(owner)
            index += 1
            if index == len(self._positions):
                index = 0
        return [self.members[owner] for owner in found]

    def owner(self, key: bytes) -> str | None:
        """The key's first owner, or None for an empty ring."""
        owners = self.preference_list(key, 1)
        return owners[0] if owners else None


def owners_of(ring: HashRing, keys: Sequence[bytes], count: int) -> list[list[str]]:
    """Each key's preference list (tests and tools)."""
    return [ring.preference_list(key, count) for key in keys]
