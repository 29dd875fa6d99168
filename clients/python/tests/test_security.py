"""Tokens and TLS of the trust issue, through the client."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cache.client import CacheClient, CacheClientConfig
from cache.errors import InvalidRequest, NoReachableNode
from conftest import Cluster

READ = "reader-token-0123456789abcdef"
WRITE = "writer-token-0123456789abcdef"


async def test_tokens_are_sent_and_a_refusal_is_typed(cluster: Cluster, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"read {READ}\nwrite {WRITE}\n")
    node = cluster.start(1, TOKENS_FILE=str(tokens))[0]
    async with CacheClient(CacheClientConfig(nodes=[node.address], token=WRITE)) as writer:
        await writer.put("k", "v")
        assert await writer.get("k") == "v"
    async with CacheClient(CacheClientConfig(nodes=[node.address], token=READ)) as reader:
        assert await reader.get("k") == "v"
        with pytest.raises(InvalidRequest) as forbidden:
            await reader.put("k", "w")
        assert forbidden.value.status == 403
    async with CacheClient(CacheClientConfig(nodes=[node.address])) as anonymous:
        with pytest.raises(InvalidRequest) as unauthorized:
            await anonymous.get("k")
        assert unauthorized.value.status == 401 and "token" in unauthorized.value.message


def _openssl(*arguments: str) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True)


async def test_tls_trusts_the_configured_authority_only(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "san").write_text("subjectAltName=IP:127.0.0.1\n")
    for authority in ("ca1", "ca2"):
        ca = tmp_path / authority
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN={authority}",
        )
        _openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            f"{ca}-node.key",
            "-out",
            f"{ca}-node.csr",
            "-subj",
            "/CN=127.0.0.1",
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{ca}-node.csr",
            "-CA",
            f"{ca}.pem",
            "-CAkey",
            f"{ca}.key",
            "-CAcreateserial",
            "-out",
            f"{ca}-node.pem",
            "-days",
            "2",
            "-extfile",
            str(tmp_path / "san"),
        )
    node = cluster.start(1, TLS_CERT_FILE=str(tmp_path / "ca1-node.pem"), TLS_KEY_FILE=str(tmp_path / "ca1-node.key"))[
        0
    ]
    trusted = CacheClientConfig(nodes=[f"https://{node.address}"], ca_file=str(tmp_path / "ca1.pem"))
    async with CacheClient(trusted) as client:
        await client.put("secret", "s")
        assert await client.get("secret") == "s"
    stranger = CacheClientConfig(
        nodes=[f"https://{node.address}"], ca_file=str(tmp_path / "ca2.pem"), timeout=2, max_retries=1
    )
    async with CacheClient(stranger) as client:
        with pytest.raises(NoReachableNode) as refused:
            await client.get("secret")
        assert "certificate" in str(refused.value).lower()
