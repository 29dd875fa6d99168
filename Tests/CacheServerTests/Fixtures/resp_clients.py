"""Real Redis clients against real nodes: redis-py (RESP2 and RESP3) and a raw socket.

Run by RESPProcessTests: `python3 resp_clients.py RESP_PORT,HTTP_PORT [RESP_PORT,HTTP_PORT ...]`.
Every check raises on failure; the script prints "ok" at the end.
"""

import base64
import json
import socket
import sys
import time
import urllib.request
import uuid

import redis

nodes = [tuple(int(p) for p in arg.split(",")) for arg in sys.argv[1:]]
run = uuid.uuid4().hex[:8]


def http_get(http_port, key, field="value"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/get/{key}") as answer:
            return json.load(answer)[field]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def http_put(http_port, key, value):
    body = json.dumps({"key": key, "value": value}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/put", data=body, method="PUT")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200, answer.status


def raw(port, payload, wait=1.0):
    """Sends bytes on a fresh connection; returns what came back within `wait` seconds of silence,
    and whether the node closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return received, True
                received += chunk
        except socket.timeout:
            return received, False


for index, (resp_port, http_port) in enumerate(nodes):
    for protocol in (2, 3):
        client = redis.Redis(port=resp_port, protocol=protocol, decode_responses=True)
        prefix = f"{run}:{index}:{protocol}"
        assert client.ping() is True
        assert client.set(f"{prefix}:a", "1") is True
        assert client.get(f"{prefix}:a") == "1"
        assert client.get(f"{prefix}:missing") is None
        assert client.set(f"{prefix}:a", "2", nx=True) is None
        assert client.set(f"{prefix}:a", "3", xx=True, get=True) == "1"
        assert client.set(f"{prefix}:t", "x", ex=100) is True
        assert 99 <= client.ttl(f"{prefix}:t") <= 100
        assert client.expire(f"{prefix}:t", 50) is True
        assert 49 <= client.ttl(f"{prefix}:t") <= 50
        assert client.persist(f"{prefix}:t") is True
        assert client.ttl(f"{prefix}:t") == -1
        assert client.mset({f"{prefix}:m1": "v1", f"{prefix}:m2": "v2"}) is True
        assert client.mget(f"{prefix}:m1", f"{prefix}:nope", f"{prefix}:m2") == ["v1", None, "v2"]
        assert client.exists(f"{prefix}:m1", f"{prefix}:m2", f"{prefix}:nope") == 2
        assert client.delete(f"{prefix}:m1", f"{prefix}:nope") == 1
        assert client.unlink(f"{prefix}:m2") == 1
        assert client.dbsize() >= 1
        info = client.info()
        assert info["redis_version"] and "used_memory" in info and "connected_clients" in info, info
        assert client.client_setname("tester") is True and client.client_getname() == "tester"
        # A pipeline of 40 commands, answered in order, reading its own writes. The tests run a
        # debug build (35 times slower than release here: 200 quorum commands took 0.7 s on an idle
        # machine). When the whole test run starves it, each write past its 1 s deadline is
        # answered UNAVAILABLE, the honest answer; the writes are idempotent, so the pipeline is
        # sent again after a pause.
        for attempt in range(5):
            pipe = client.pipeline(transaction=False)
            for i in range(20):
                pipe.set(f"{prefix}:p{i}", str(i))
                pipe.get(f"{prefix}:p{i}")
            try:
                answers = pipe.execute()
                break
            except redis.ResponseError as error:
                if "UNAVAILABLE" not in str(error) or attempt == 4:
                    raise
                time.sleep(0.5)
        assert answers == [item for i in range(20) for item in (True, str(i))], answers[:6]
        # Unknown commands and bad arguments are errors, and the connection goes on.
        try:
            client.execute_command("LPUSH", "list", "a")
            raise AssertionError("LPUSH answered")
        except redis.ResponseError as error:
            assert "unknown command" in str(error), error
        try:
            client.set(f"{prefix}:bad", "v", ex=0)
            raise AssertionError("EX 0 answered")
        except redis.ResponseError as error:
            assert "invalid expire time" in str(error), error
        assert client.get(f"{prefix}:a") == "3"
        client.close()

    # Values up to the limit pass; one byte more is refused without closing the connection.
    binary = redis.Redis(port=resp_port)
    big = bytes(range(256)) * 4096
    assert binary.set(f"{run}:{index}:big", big) is True
    assert binary.get(f"{run}:{index}:big") == big
    try:
        binary.set(f"{run}:{index}:huge", big + b"x")
        raise AssertionError("an oversized value was stored")
    except redis.ResponseError as error:
        assert "exceeds the limit" in str(error), error
    assert binary.get(f"{run}:{index}:huge") is None
    # Bytes that are not UTF-8 are kept as they are; HTTP, whose JSON strings are text, gives them
    # in base64.
    assert binary.set(f"{run}:{index}:bin", b"\xff\x00\xc3") is True
    assert binary.get(f"{run}:{index}:bin") == b"\xff\x00\xc3"
    assert http_get(http_port, f"{run}:{index}:bin") is None
    assert base64.b64decode(http_get(http_port, f"{run}:{index}:bin", "value_base64")) == b"\xff\x00\xc3"
    binary.close()

    # A value written over RESP is read over HTTP, and the other way round (on every node).
    writer = redis.Redis(port=resp_port, decode_responses=True)
    writer.set(f"{run}:resp-to-http:{index}", "from-resp")
    http_put(http_port, f"{run}:http-to-resp:{index}", "from-http")
    for other_resp, other_http in nodes:
        reader = redis.Redis(port=other_resp, decode_responses=True)
        assert http_get(other_http, f"{run}:resp-to-http:{index}") == "from-resp"
        assert reader.get(f"{run}:http-to-resp:{index}") == "from-http"
        reader.close()
    writer.close()

    # Bytes that are not the protocol: an error line, then the node hangs up.
    answer, closed = raw(resp_port, b"*2\r\n$3\r\nGET\r\n:5\r\n*1\r\n$4\r\nPING\r\n")
    assert answer == b"-ERR Protocol error: expected '$', got ':'\r\n" and closed, (answer, closed)
    # An announced argument far over the limit is refused before it is read.
    answer, closed = raw(resp_port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999\r\n")
    assert answer == b"" and not closed, answer  # the node waits for the bytes, keeping none of them
    # Inline commands, as from telnet.
    answer, _ = raw(resp_port, b"PING\r\nECHO hello\r\n", wait=0.5)
    assert answer == b"+PONG\r\n$5\r\nhello\r\n", answer

print("ok")
