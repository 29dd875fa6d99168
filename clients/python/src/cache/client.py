"""The asyncio client of a cache-node cluster.

It reads the membership (``GET /cluster``) from one of ``config.nodes``, places each key with the
ring the nodes run (``cache.ring``), and sends each call to the key's first owner seen alive. A
refused or broken connection or a timeout moves the call to the next replica at once and marks the
node down for ``down_period`` (then probed back with ``GET /health``); a 503 is retried with
exponential backoff and full jitter; all within the call's deadline (``timeout``) and at most
``max_retries`` retries. Answers whose ``x-ring-version`` differs from the client's prompt a new
read of the membership. The design follows the Swift ``CacheClient`` (docs/python-client.md).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

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
from cache.ring import DEFAULT_VIRTUAL_NODES, HashRing

Consistency = Literal["one", "quorum", "all"]

__all__ = [
    "CacheClient",
    "CacheClientConfig",
    "ClusterStatus",
    "Consistency",
    "Member",
    "NodeStats",
    "SyncCacheClient",
]


@dataclass(frozen=True)
class CacheClientConfig:
    """How the client reaches the cluster and how hard it tries.

    ``nodes``: where to read the membership first, ``host:port`` with or without ``http://`` (or
    ``https://``, which turns TLS on). ``timeout``: the whole call's deadline in seconds, retries
    included. ``max_retries``: attempts after the first. ``consistency``: the level of calls that
    name none (``None``: each node's default). ``token``: a bearer token for nodes that require
    one. ``tls``/``ca_file``: HTTPS, trusting ``ca_file`` (or the system's authorities).
    ``max_clock_offset``: how far a node's clock may read behind this machine's (the nodes'
    ``MAX_CLOCK_OFFSET_MS``, in seconds): each write tells its node when the client stops waiting
    (``X-Cache-Deadline``) and the node makes no write past it; after a write timed out, the client
    waits this long before making it through another node, so the abandoned attempt cannot land
    after the retry and undo it.
    """

    nodes: list[str]
    timeout: float = 5.0
    max_retries: int = 3
    consistency: Consistency | None = None
    connections_per_node: int = 16
    connect_timeout: float = 0.5
    backoff_base: float = 0.01
    backoff_cap: float = 0.5
    down_period: float = 1.0
    topology_refresh_interval: float = 10.0
    token: str | None = None
    tls: bool = False
    ca_file: str | None = None
    max_clock_offset: float = 0.5
    addresses: tuple[tuple[str, int], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.nodes, str):
            raise InvalidConfiguration("nodes is a list of addresses, not one string")
        if not self.nodes:
            raise InvalidConfiguration("nodes: at least one address is needed")
        addresses: list[tuple[str, int]] = []
        tls = self.tls
        for node in self.nodes:
            text = node.strip()
            if text.startswith("https://"):
                tls = True
                text = text[len("https://") :]
            elif text.startswith("http://"):
                text = text[len("http://") :]
            text = text.rstrip("/")
            addresses.append(_parse_address(text, node))
        if self.timeout <= 0:
            raise InvalidConfiguration(f"timeout must be positive seconds, not {self.timeout}")
        if self.max_retries < 0:
            raise InvalidConfiguration(f"max_retries must be 0 or more, not {self.max_retries}")
        if self.connections_per_node < 1:
            raise InvalidConfiguration(f"connections_per_node must be at least 1, not {self.connections_per_node}")
        if self.consistency not in (None, "one", "quorum", "all"):
            raise InvalidConfiguration(f"consistency must be one, quorum or all, not {self.consistency!r}")
        for name in (
            "connect_timeout",
            "backoff_base",
            "backoff_cap",
            "down_period",
            "topology_refresh_interval",
            "max_clock_offset",
        ):
            if getattr(self, name) < 0:
                raise InvalidConfiguration(f"{name} must not be negative")
        object.__setattr__(self, "addresses", tuple(addresses))
        object.__setattr__(self, "tls", tls)


def _parse_address(text: str, original: str) -> tuple[str, int]:
    host, colon, port_text = text.rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535 or "/" in host:
        raise InvalidConfiguration(f"node {original!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _address_text(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Member:
    """One member of the cluster as a node sees it."""

    id: str
    address: str
    client_address: str
    status: str
    incarnation: int
    ring_share: float
    last_contact_seconds: float | None


@dataclass(frozen=True)
class ClusterStatus:
    """``GET /cluster``: the membership and the ring as one node sees them."""

    node_id: str
    ring_version: str
    ring_members: int
    virtual_nodes: int
    replication_factor: int
    effective_replication_factor: int
    consistency: str
    members: list[Member]
    handoff_backlog: int
    tombstones: int
    rebalancing: bool
    seeds: list[str]

    @staticmethod
    def from_json(document: Mapping[str, Any]) -> ClusterStatus:
        members = [
            Member(
                id=str(m["id"]),
                address=str(m.get("address", "")),
                client_address=str(m.get("client_address", "")),
                status=str(m.get("status", "")),
                incarnation=int(m.get("incarnation", 0)),
                ring_share=float(m.get("ring_share", 0)),
                last_contact_seconds=None
                if m.get("last_contact_seconds") is None
                else float(m["last_contact_seconds"]),
            )
            for m in document.get("members", [])
        ]
        return ClusterStatus(
            node_id=str(document["node_id"]),
            ring_version=str(document["ring_version"]),
            ring_members=int(document.get("ring_members", len(members))),
            virtual_nodes=int(document.get("virtual_nodes") or DEFAULT_VIRTUAL_NODES),
            replication_factor=int(document["replication_factor"]),
            effective_replication_factor=int(document.get("effective_replication_factor", 0)),
            consistency=str(document.get("consistency", "")),
            members=members,
            handoff_backlog=int(document.get("handoff_backlog", 0)),
            tombstones=int(document.get("tombstones", 0)),
            rebalancing=bool(document.get("rebalancing", False)),
            seeds=[str(seed) for seed in document.get("seeds", [])],
        )


@dataclass(frozen=True)
class NodeStats:
    """``GET /stats`` of one node: the figures most read, and the whole document in ``raw``."""

    node_id: str
    version: str
    status: str
    uptime_seconds: float
    entries: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    tombstones: int
    ops: dict[str, int]
    raw: dict[str, Any] = field(repr=False)

    @staticmethod
    def from_json(document: dict[str, Any]) -> NodeStats:
        return NodeStats(
            node_id=str(document.get("node_id", "")),
            version=str(document.get("version", "")),
            status=str(document.get("status", "")),
            uptime_seconds=float(document.get("uptime_seconds", 0)),
            entries=int(document.get("entries", 0)),
            hits=int(document.get("hits", 0)),
            misses=int(document.get("misses", 0)),
            evictions=int(document.get("evictions", 0)),
            expirations=int(document.get("expirations", 0)),
            tombstones=int(document.get("tombstones", 0)),
            ops={str(k): int(v) for k, v in dict(document.get("ops", {})).items()},
            raw=document,
        )

    @property
    def hit_ratio(self) -> float | None:
        """Hits over reads, or None before the first read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else None

    def __str__(self) -> str:
        ratio = "n/a" if self.hit_ratio is None else f"{self.hit_ratio:.1%}"
        ops = ", ".join(f"{name} {count}" for name, count in sorted(self.ops.items()))
        return (
            f"{self.node_id} ({self.status}, version {self.version}, up {self.uptime_seconds:.0f} s): "
            f"{self.entries} entries, hit ratio {ratio}, {self.evictions} evictions, "
            f"{self.expirations} expirations; ops: {ops}"
        )


@dataclass
class _Answer:
    status: int
    body: bytes
    node: str
    ring_version: str | None

    def json(self) -> Any:
        return json.loads(self.body)

    def message(self) -> str:
        try:
            document = json.loads(self.body)
            if isinstance(document, dict) and isinstance(document.get("error"), str):
                return str(document["error"])
        except ValueError:
            pass
        return self.body.decode(errors="replace")


class _Unreachable(Exception):
    pass


class _TimedOut(Exception):
    pass


class _Topology:
    def __init__(self, status: ClusterStatus) -> None:
        self.status = status
        self.version = status.ring_version
        usable = sorted((m for m in status.members if m.status != "left"), key=lambda m: m.id.encode())
        self.ring = HashRing((m.id for m in usable), status.virtual_nodes)
        self.members: dict[str, tuple[tuple[str, int], str]] = {}
        for m in status.members:
            try:
                self.members[m.id] = (_parse_address(m.client_address, m.client_address), m.status)
            except InvalidConfiguration:
                continue
        alive = [m for m in usable if m.status == "alive"] + [m for m in usable if m.status != "alive"]
        self.coordinators = [self.members[m.id][0] for m in alive if m.id in self.members]

    def owners(self, key: str) -> list[tuple[tuple[str, int], bool]]:
        ids = self.ring.preference_list(key.encode(), self.status.replication_factor)
        return [(self.members[i][0], self.members[i][1] == "alive") for i in ids if i in self.members]


class CacheClient:
    """A client of a cache-node cluster. Use ``async with CacheClient(config) as client`` or call
    ``await client.close()`` when done."""

    def __init__(self, config: CacheClientConfig) -> None:
        self.config = config
        self._http: dict[tuple[str, int], httpx.AsyncClient] = {}
        self._topology: _Topology | None = None
        self._refreshed_at = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._down_until: dict[tuple[str, int], float] = {}
        self._probes: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._closed = False
        self.retries = 0
        """Retries made so far (tests and metrics)."""
        self.nodes_marked_down = 0
        """Times a node was marked down so far."""
        self.topology_reads = 0
        """Reads of ``/cluster`` so far."""
        headers = {"user-agent": "cache-python-client"}
        if config.token:
            headers["authorization"] = f"Bearer {config.token}"
        self._headers = headers
        self._verify: ssl.SSLContext | bool = True
        if config.tls and config.ca_file:
            self._verify = ssl.create_default_context(cafile=config.ca_file)

    async def __aenter__(self) -> CacheClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes every connection; later calls raise ``ClientClosed``."""
        if self._closed:
            return
        self._closed = True
        if self._refreshing is not None:
            self._refreshing.cancel()
        probes = list(self._probes.values())
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        clients = list(self._http.values())
        self._http.clear()
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    # Data calls

    async def get(self, key: str, consistency: Consistency | None = None) -> str | None:
        """The value stored under ``key``, or None when there is none."""
        answer = await self._call(key, "GET", "/get/" + _escape(key) + self._query(consistency), None)
        if answer.status == 404:
            return None
        document = answer.json()
        value = document.get("value") if isinstance(document, dict) else None
        if not isinstance(value, str):
            raise CacheError(f"{answer.node} answered without a value: {answer.body[:200]!r}")
        return value

    async def put(self, key: str, value: str, ttl: float | None = None, consistency: Consistency | None = None) -> None:
        """Stores ``value`` under ``key`` for ``ttl`` seconds (None: the node's default; 0: never
        expires)."""
        body: dict[str, Any] = {"key": key, "value": value}
        if ttl is not None:
            if ttl < 0:
                raise InvalidRequest(0, f"ttl must not be negative, not {ttl}")
            body["ttl"] = int(ttl) if float(ttl).is_integer() else ttl
        await self._call(key, "PUT", "/put" + self._query(consistency), json.dumps(body).encode())

    async def delete(self, key: str, consistency: Consistency | None = None) -> bool:
        """Deletes ``key``; True if it held a value."""
        answer = await self._call(key, "DELETE", "/delete/" + _escape(key) + self._query(consistency), None)
        return answer.status == 200

    async def get_many(self, keys: Iterable[str], consistency: Consistency | None = None) -> dict[str, str]:
        """The values of ``keys`` that exist, read concurrently (each call to its key's first owner,
        at most ``connections_per_node`` at a time); any failure fails the batch."""
        unique = list(dict.fromkeys(keys))
        limit = asyncio.Semaphore(self.config.connections_per_node)

        async def one(key: str) -> tuple[str, str | None]:
            async with limit:
                return key, await self.get(key, consistency)

        results = await asyncio.gather(*(one(key) for key in unique))
        return {key: value for key, value in results if value is not None}

    async def put_many(
        self, entries: Mapping[str, str], ttl: float | None = None, consistency: Consistency | None = None
    ) -> None:
        """Stores every entry, concurrently as ``get_many`` reads; any failure fails the batch
        (entries already stored stay stored)."""
        limit = asyncio.Semaphore(self.config.connections_per_node)

        async def one(key: str, value: str) -> None:
            async with limit:
                await self.put(key, value, ttl, consistency)

        await asyncio.gather(*(one(key, value) for key, value in entries.items()))

    # Operator calls

    async def get_stats(self, node: str | None = None) -> NodeStats:
        """``/stats`` of ``node`` (host:port), or of the first node that answers."""
        answer = await self._call(None, "GET", "/stats", None, node=node)
        return NodeStats.from_json(answer.json())

    async def health(self, node: str | None = None) -> bool:
        """Whether ``node`` (or the first node that answers) says it is healthy."""
        answer = await self._call(None, "GET", "/health", None, node=node)
        return answer.status == 200

    async def cluster(self, node: str | None = None) -> ClusterStatus:
        """The membership and ring as ``node`` (or the first node that answers) sees them."""
        answer = await self._call(None, "GET", "/cluster", None, node=node)
        return ClusterStatus.from_json(answer.json())

    # The call loop

    def _query(self, consistency: Consistency | None) -> str:
        level = consistency or self.config.consistency
        if level is None:
            return ""
        if level not in ("one", "quorum", "all"):
            raise InvalidRequest(0, f"consistency must be one, quorum or all, not {level!r}")
        return "?consistency=" + level

    def _candidates(self, key: str | None) -> list[tuple[str, int]]:
        ordered: list[tuple[str, int]] = []

        def add(node: tuple[str, int]) -> None:
            if node not in ordered:
                ordered.append(node)

        topology = self._topology
        owners = topology.owners(key) if topology is not None and key is not None else []
        for address, alive in owners:
            if alive:
                add(address)
        for address in self.config.addresses:
            add(address)
        for address in topology.coordinators if topology is not None else []:
            add(address)
        for address, _ in owners:
            add(address)
        now = time.monotonic()
        up = [node for node in ordered if self._down_until.get(node, 0) <= now]
        return up + [node for node in ordered if node not in up]

    async def _call(
        self, key: str | None, method: str, path: str, body: bytes | None, node: str | None = None
    ) -> _Answer:
        if self._closed:
            raise ClientClosed("the client is closed")
        started = time.monotonic()
        deadline = started + self.config.timeout
        fixed = _parse_address(node, node) if node is not None else None
        if fixed is None:
            if self._topology is None:
                await self._first_topology(min(self.config.timeout / 4, 1.0))
            elif time.monotonic() - self._refreshed_at > self.config.topology_refresh_interval:
                self._refresh_soon()
        attempts = self.config.max_retries + 1
        tried: dict[str, str] = {}
        failed_here: set[tuple[str, int]] = set()
        last: CacheError | None = None
        previous: tuple[str, int] | None = None
        made = 0
        write_timed_out = False
        for number in range(attempts):
            if fixed is not None:
                target = fixed
            else:
                candidates = self._candidates(key)
                target = next((c for c in candidates if c not in failed_here), candidates[0])
            if number > 0:
                self.retries += 1
                unreached = previous is not None and tried.get(_address_text(previous), "").startswith("unreachable")
                if target == previous or not unreached:
                    await self._backoff(number, deadline)
            previous = target
            if write_timed_out:
                # The abandoned attempt may still reach its node, which refuses it past the deadline
                # it was sent with, by a clock up to max_clock_offset behind this one.
                if deadline - time.monotonic() <= self.config.max_clock_offset:
                    raise Timeout(time.monotonic() - started, made, next(reversed(tried.values()), None))
                await asyncio.sleep(self.config.max_clock_offset)
                write_timed_out = False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # A node that hangs must leave time to ask another.
            budget = remaining if number == attempts - 1 else max(remaining / 2, min(remaining, 0.05))
            made += 1
            name = _address_text(target)
            try:
                answer = await self._attempt(method, path, body, target, budget)
            except _Unreachable as failure:
                failed_here.add(target)
                tried[name] = f"unreachable: {failure}"
                self._mark_down(target)
                self._refresh_soon(force=True)
                continue
            except _TimedOut:
                failed_here.add(target)
                write_timed_out = method in ("PUT", "DELETE")
                tried[name] = f"no answer within {budget * 1000:.0f} ms"
                self._mark_down(target)
                self._refresh_soon(force=True)
                continue
            if answer.ring_version and self._topology is not None and answer.ring_version != self._topology.version:
                self._refresh_soon(force=True)
            if 200 <= answer.status < 300:
                return answer
            if answer.status == 404 and method in ("GET", "DELETE") and key is not None:
                return answer
            if answer.status == 408:
                # The node did not make the write: the deadline sent had passed by its clock (behind
                # or ahead of this one). Another node may take it at once.
                failed_here.add(target)
                last = ServerError(answer.status, answer.message(), name)
                tried[name] = str(last)
                continue
            if 400 <= answer.status < 500:
                raise InvalidRequest(answer.status, answer.message(), name)
            failed_here.add(target)
            last = self._server_error(answer)
            tried[name] = str(last)
        if time.monotonic() >= deadline:
            raise Timeout(time.monotonic() - started, made, next(reversed(tried.values()), None))
        if last is not None:
            raise last
        raise NoReachableNode(tried)

    @staticmethod
    def _server_error(answer: _Answer) -> CacheError:
        if answer.status == 503:
            try:
                document = answer.json()
                if isinstance(document, dict) and {"consistency", "answered", "required"} <= document.keys():
                    return Unavailable(
                        str(document["consistency"]), int(document["answered"]), int(document["required"]), answer.node
                    )
            except ValueError:
                pass
        return ServerError(answer.status, answer.message(), answer.node)

    async def _backoff(self, attempt: int, deadline: float) -> None:
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * (2 ** min(attempt - 1, 20)))
        wait = random.uniform(0, ceiling)
        await asyncio.sleep(max(0.0, min(wait, deadline - time.monotonic())))

    def _client(self, node: tuple[str, int]) -> httpx.AsyncClient:
        client = self._http.get(node)
        if client is None:
            scheme = "https" if self.config.tls else "http"
            limits = httpx.Limits(
                max_connections=self.config.connections_per_node,
                max_keepalive_connections=self.config.connections_per_node,
                keepalive_expiry=30.0,
            )
            client = httpx.AsyncClient(
                base_url=f"{scheme}://{_address_text(node)}",
                headers=self._headers,
                limits=limits,
                verify=self._verify,
                follow_redirects=False,
                trust_env=False,
            )
            self._http[node] = client
        return client

    async def _attempt(
        self, method: str, path: str, body: bytes | None, node: tuple[str, int], budget: float
    ) -> _Answer:
        if self._closed:
            raise ClientClosed("the client is closed")
        client = self._client(node)
        timeout = httpx.Timeout(budget, connect=min(budget, self.config.connect_timeout or budget), pool=budget)
        headers = {"content-type": "application/json"} if body is not None else {}
        if method in ("PUT", "DELETE"):
            # When this client stops waiting, by its wall clock: the node makes no write past it.
            headers["x-cache-deadline"] = str(int((time.time() + budget) * 1000))
        try:
            response = await client.request(method, path, content=body, headers=headers, timeout=timeout)
        except httpx.PoolTimeout as error:
            raise _TimedOut() from error
        except httpx.TimeoutException as error:
            if isinstance(error, httpx.ConnectTimeout):
                raise _Unreachable("connect timed out") from error
            raise _TimedOut() from error
        except httpx.TransportError as error:
            raise _Unreachable(_describe(error)) from error
        return _Answer(
            status=response.status_code,
            body=response.content,
            node=_address_text(node),
            ring_version=response.headers.get("x-ring-version"),
        )

    # Topology

    async def _first_topology(self, limit: float) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        try:
            await asyncio.wait_for(asyncio.shield(self._refreshing), timeout=limit)
        except (asyncio.TimeoutError, CacheError):
            pass

    def _refresh_soon(self, force: bool = False) -> None:
        if self._closed:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        if not force and time.monotonic() - self._refreshed_at < self.config.topology_refresh_interval:
            return
        if force and time.monotonic() - self._refreshed_at < 0.1:
            return
        self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        known = self._topology.coordinators if self._topology is not None else []
        order = list(dict.fromkeys([*known, *self.config.addresses]))
        now = time.monotonic()
        order.sort(key=lambda node: self._down_until.get(node, 0) > now)
        for node in order:
            try:
                answer = await self._attempt("GET", "/cluster", None, node, self.config.timeout / 2)
            except (_Unreachable, _TimedOut, ClientClosed):
                continue
            if answer.status != 200:
                continue
            try:
                status = ClusterStatus.from_json(answer.json())
            except (ValueError, KeyError, TypeError):
                continue
            self._topology = _Topology(status)
            self._refreshed_at = time.monotonic()
            self.topology_reads += 1
            return

    @property
    def nodes_down(self) -> set[str]:
        """The nodes marked down now (skipped unless nothing else is left)."""
        now = time.monotonic()
        return {_address_text(node) for node, until in self._down_until.items() if until > now}

    def _mark_down(self, node: tuple[str, int]) -> None:
        self.nodes_marked_down += 1
        self._down_until[node] = time.monotonic() + self.config.down_period
        if node not in self._probes and not self._closed:
            self._probes[node] = asyncio.ensure_future(self._probe(node))

    async def _probe(self, node: tuple[str, int]) -> None:
        """Asks a node marked down for ``/health`` until it answers, backing off to 8 times
        ``down_period``; while it does not, it stays marked down."""
        failures = 0
        try:
            while not self._closed:
                await asyncio.sleep(self.config.down_period * (2 ** min(failures, 3)))
                try:
                    answer = await self._attempt(
                        "GET", "/health", None, node, max(0.2, self.config.connect_timeout * 2)
                    )
                    if answer.status == 200:
                        self._down_until.pop(node, None)
                        return
                except (_Unreachable, _TimedOut, ClientClosed):
                    pass
                failures += 1
                self._down_until[node] = time.monotonic() + self.config.down_period * (2 ** min(failures, 3))
        finally:
            self._probes.pop(node, None)


class SyncCacheClient:
    """The same calls, blocking, for scripts and the REPL: ``with SyncCacheClient(config) as c:``.
    It runs its own event loop; do not use it from inside a running one."""

    def __init__(self, config: CacheClientConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = CacheClient(config)

    def __enter__(self) -> SyncCacheClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes every connection and the event loop."""
        if self._loop.is_closed():
            return
        self._loop.run_until_complete(self._client.close())
        self._loop.close()

    def get(self, key: str, consistency: Consistency | None = None) -> str | None:
        return self._loop.run_until_complete(self._client.get(key, consistency))

    def put(self, key: str, value: str, ttl: float | None = None, consistency: Consistency | None = None) -> None:
        self._loop.run_until_complete(self._client.put(key, value, ttl, consistency))

    def delete(self, key: str, consistency: Consistency | None = None) -> bool:
        return self._loop.run_until_complete(self._client.delete(key, consistency))

    def get_many(self, keys: Iterable[str], consistency: Consistency | None = None) -> dict[str, str]:
        return self._loop.run_until_complete(self._client.get_many(keys, consistency))

    def put_many(
        self, entries: Mapping[str, str], ttl: float | None = None, consistency: Consistency | None = None
    ) -> None:
        self._loop.run_until_complete(self._client.put_many(entries, ttl, consistency))

    def get_stats(self, node: str | None = None) -> NodeStats:
        return self._loop.run_until_complete(self._client.get_stats(node))

    def health(self, node: str | None = None) -> bool:
        return self._loop.run_until_complete(self._client.health(node))

    def cluster(self, node: str | None = None) -> ClusterStatus:
        return self._loop.run_until_complete(self._client.cluster(node))


def _escape(key: str) -> str:
    return quote(key, safe="-._~:")


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if "connection refused" in lowered or "connect call failed" in lowered:
        return "connection refused"
    return text
