"""The Python ring against CacheCore's: keys and owners the Swift side computed."""

from __future__ import annotations

import json
from pathlib import Path

from cache.ring import HashRing, key_position

VECTORS = json.loads((Path(__file__).parent / "ring_vectors.json").read_text())


def test_every_key_has_the_owners_cachecore_gives_it() -> None:
    checked = 0
    for spec in VECTORS["rings"]:
        ring = HashRing(spec["members"], spec["virtual_nodes"])
        assert ring.version_hex == spec["version"], spec["members"]
        for case in spec["cases"]:
            key = bytes.fromhex(case["key_hex"])
            assert f"{key_position(key):016x}" == case["position"], key
            assert ring.preference_list(key, 3) == case["owners"], (spec["members"], key)
            checked += 1
    assert checked >= 200


def test_a_ring_that_differs_is_caught() -> None:
    # The check above can fail: the same members with another number of points place keys elsewhere.
    spec = VECTORS["rings"][1]
    other = HashRing(spec["members"], spec["virtual_nodes"] // 2)
    owners = [other.preference_list(bytes.fromhex(case["key_hex"]), 3) for case in spec["cases"]]
    assert owners != [case["owners"] for case in spec["cases"]]
