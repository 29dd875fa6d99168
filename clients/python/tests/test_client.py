"""The client against real cache-node processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cache.client import CacheClient, CacheClientConfig, SyncCacheClient
from cache.errors import CacheError, InvalidConfiguration, InvalidRequest, NoReachableNode, Timeout, Unavailable
from cache.ring import HashRing
from conftest import Cluster


async def test_the_readme_program_runs_as_written(cluster: Cluster) -> None:
    nodes = cluster.start(2)
    program = (Path(__file__).parent / "readme_example.py").read_text()
    for index, node in enumerate(nodes):
        program = program.replace(f"http://localhost:{8000 + index}", f"http://{node.address}")
    run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "key1 = value1" in run.stdout
    assert "Stats: " in run.stdout and "entries" in run.stdout, run.stdout


async def test_each_call_goes_to_its_keys_first_owner(cluster: Cluster) -> None:
    nodes = cluster.start(3, REPLICATION_FACTOR="2")
    keys = [f"route-{index}" for index in range(60)]
    ring = HashRing(node.node_id for node in nodes)
    expected = {node.node_id: 0 for node in nodes}
    for key in keys:
        owner = ring.owner(key.encode())
        assert owner is not None
        expected[owner] += 1
    before = {node.node_id: node.ops("put") for node in nodes}
    async with CacheClient(CacheClientConfig(nodes=[nodes[0].address], consistency="quorum")) as client:
        for key in keys:
            await client.put(key, "v")
        assert await client.get_many([*keys, "route-absent"]) == {key: "v" for key in keys}
        assert client.retries == 0
    coordinated = {node.node_id: node.ops("put") - before[node.node_id] for node in nodes}
    assert coordinated == expected


async def test_values_round_trip_with_ttl_delete_and_absent_keys(cluster: Cluster) -> None:
    nodes = cluster.start(1)
    async with CacheClient(CacheClientConfig(nodes=[f"http://{nodes[0].address}/"])) as client:
        await client.put("k", 'clé ✓ "quoted"\n', ttl=60)
        assert await client.get("k") == 'clé ✓ "quoted"\n'
        await client.put("spaced key/with?odd#chars", "x")
        assert await client.get("spaced key/with?odd#chars") == "x"
        assert await client.get("missing") is None
        assert await client.delete("k") is True
        assert await client.delete("k") is False
        await client.put_many({"m1": "1", "m2": "2"}, ttl=0)
        assert await client.get_many(["m1", "m2", "m3"]) == {"m1": "1", "m2": "2"}
        stats = await client.get_stats()
        assert stats.node_id == "n0" and stats.entries >= 3 and "entries" in str(stats)
        assert await client.health() is True
        status = await client.cluster()
        assert [member.id for member in status.members] == ["n0"]


async def test_errors_are_typed(cluster: Cluster) -> None:
    nodes = cluster.start(1)
    with pytest.raises(InvalidConfiguration):
        CacheClientConfig(nodes=[])
    with pytest.raises(InvalidConfiguration):
        CacheClientConfig(nodes=["localhost"])
    async with CacheClient(CacheClientConfig(nodes=[nodes[0].address], max_retries=2)) as client:
        with pytest.raises(InvalidRequest) as refused:
            await client.put("k" * 2000, "v")
        assert refused.value.status == 413 and "limit is 1024" in refused.value.message
        assert client.retries == 0
    # Two replicas wanted at `all`, one of them down: not met, retried, then Unavailable.
    pair = cluster.start(1)
    assert len(pair) == 2
    pair[1].kill()
    async with CacheClient(CacheClientConfig(nodes=[pair[0].address], max_retries=2)) as client:
        with pytest.raises(Unavailable) as unavailable:
            await client.put("k", "v", consistency="all")
        assert (unavailable.value.level, unavailable.value.answered, unavailable.value.required) == ("all", 1, 2)
        assert client.retries == 2
    nothing = CacheClientConfig(nodes=["127.0.0.1:1"], timeout=2, max_retries=1)
    async with CacheClient(nothing) as client:
        with pytest.raises(NoReachableNode) as unreachable:
            await client.get("k")
        assert "127.0.0.1:1" in str(unreachable.value)
        assert isinstance(unreachable.value, CacheError)


async def test_a_node_killed_under_quorum_load_costs_no_failed_call(cluster: Cluster) -> None:
    nodes = cluster.start(3)
    config = CacheClientConfig(nodes=[node.address for node in nodes], timeout=5, consistency="quorum")
    failures: list[str] = []
    calls = 0
    stop = asyncio.Event()

    async def load(client: CacheClient, worker: int) -> None:
        nonlocal calls
        round_number = 0
        while not stop.is_set():
            key = f"load-{worker}-{round_number % 20}"
            round_number += 1
            try:
                await client.put(key, f"v{round_number}")
                value = await client.get(key)
                if value != f"v{round_number}":
                    failures.append(f"{key} read {value} after v{round_number}")
            except CacheError as error:
                failures.append(f"{key}: {error}")
            calls += 2

    async with CacheClient(config) as client:
        workers = [asyncio.create_task(load(client, worker)) for worker in range(8)]
        await asyncio.sleep(1.0)
        nodes[2].kill()
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*workers)
        assert client.nodes_marked_down >= 1
    assert calls > 100
    assert failures == []


async def test_retries_are_bounded_by_count_and_deadline(cluster: Cluster) -> None:
    nodes = cluster.start(1)
    nodes[0].pause()
    try:
        config = CacheClientConfig(nodes=[nodes[0].address], timeout=1.0, max_retries=5)
        async with CacheClient(config) as client:
            started = asyncio.get_running_loop().time()
            with pytest.raises(Timeout) as timed_out:
                await client.get("k")
            elapsed = asyncio.get_running_loop().time() - started
            assert 0.9 <= elapsed < 2.0
            assert 1 <= timed_out.value.attempts <= 6
            # A write that timed out waits out the clock offset before another attempt; with no
            # time left for one after it, the call ends as a timeout (its outcome unknown).
            with pytest.raises(Timeout):
                await client.put("k", "v")
    finally:
        nodes[0].resume()


async def test_a_write_a_paused_node_finds_after_the_retry_does_not_undo_later_writes(cluster: Cluster) -> None:
    # The write times out on its first owner (paused) and is made through another node; the paused
    # node, resumed, finds the first request past the deadline the client sent, and does not make it.
    nodes = cluster.start(3)
    ring = HashRing([node.node_id for node in nodes])
    key = next(k for k in (f"late-{i}" for i in range(200)) if ring.owner(k.encode()) == "n1")
    config = CacheClientConfig(nodes=[nodes[0].address], timeout=4, max_retries=3)
    async with CacheClient(config) as client:
        await client.cluster()
        nodes[1].pause()
        try:
            await client.put(key, "first", consistency="one")
            await client.put(key, "second", consistency="one")
            assert client.retries >= 1
        finally:
            nodes[1].resume()
        for _ in range(50):
            if nodes[1].get_json("/health").get("status") == "ok":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert await client.get(key, consistency="all") == "second"
    url = f"http://{nodes[1].address}/metrics"
    metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    assert "cache_writes_past_deadline_total 1" in metrics


async def test_cancellation_ends_a_waiting_call(cluster: Cluster) -> None:
    nodes = cluster.start(1)
    async with CacheClient(CacheClientConfig(nodes=[nodes[0].address], timeout=30)) as client:
        await client.put("k", "v")
        nodes[0].pause()
        try:
            call = asyncio.create_task(client.get("k"))
            await asyncio.sleep(0.3)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        finally:
            nodes[0].resume()
        assert await client.get("k") == "v"


async def test_a_node_marked_down_is_probed_and_used_again_once_back(cluster: Cluster) -> None:
    nodes = cluster.start(1)
    config = CacheClientConfig(nodes=[nodes[0].address], timeout=0.5, max_retries=0, down_period=0.3)
    async with CacheClient(config) as client:
        await client.put("k", "v")
        nodes[0].pause()
        try:
            with pytest.raises(Timeout):
                await client.get("k")
            assert client.nodes_down == {nodes[0].address}
            # Still down well past down_period: the probe keeps finding it silent.
            await asyncio.sleep(1.5)
            assert client.nodes_down == {nodes[0].address}
        finally:
            nodes[0].resume()
        for _ in range(50):
            if not client.nodes_down:
                break
            await asyncio.sleep(0.1)
        assert client.nodes_down == set()
        assert await client.get("k") == "v"


def test_the_blocking_facade_makes_the_same_calls(cluster: Cluster) -> None:
    nodes = cluster.start(1)
    with SyncCacheClient(CacheClientConfig(nodes=[nodes[0].address])) as client:
        client.put("sync", "yes", ttl=60)
        assert client.get("sync") == "yes"
        assert client.get_many(["sync", "nope"]) == {"sync": "yes"}
        assert client.delete("sync") is True
        assert client.get("sync") is None
        assert client.get_stats().entries >= 0
        assert client.health() is True
