"""deploy/kubernetes: every manifest is valid against the API's schemas, agrees with what the node
expects, and the preStop hook leaves only when the StatefulSet shrinks (run for real against a
stand-in API server and real nodes). No Kubernetes cluster runs here."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from conftest import MANIFESTS, Cluster, node_binary

RESOURCES = sorted(path for path in MANIFESTS.glob("*.yaml") if path.name != "kustomization.yaml")


def documents(name: str) -> list[dict[str, Any]]:
    with open(MANIFESTS / name) as file:
        return [document for document in yaml.safe_load_all(file) if document]


def one(kind: str) -> dict[str, Any]:
    found = [document for path in RESOURCES for document in documents(path.name) if document["kind"] == kind]
    assert len(found) == 1, f"{kind}: {len(found)}"
    return found[0]


def validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("kubernetes-validate")
    command = [str(binary if binary.exists() else shutil.which("kubernetes-validate")), "--strict", "--quiet"]
    return subprocess.run(command + [str(path) for path in paths], capture_output=True, text=True, timeout=300)


def test_every_manifest_is_valid_against_the_kubernetes_api_schemas(tmp_path: Path) -> None:
    run = validate(RESOURCES)
    assert run.returncode == 0, run.stdout + run.stderr
    # The validator rejects what the API server would: a mistyped field, a wrong type.
    broken = tmp_path / "broken.yaml"
    text = (MANIFESTS / "statefulset.yaml").read_text()
    broken.write_text(text.replace("replicas: 3", 'replicas: "three"').replace("serviceName:", "serviceNme:"))
    run = validate([broken])
    assert run.returncode != 0, run.stdout + run.stderr
    # kustomize applies exactly the manifests, the example Secret aside.
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        path.name for path in RESOURCES if path.name != "secret.example.yaml"
    )


def node_settings() -> set[str]:
    """Every setting cache-node --help lists (its `Env:` names)."""
    run = subprocess.run([str(node_binary()), "--help"], capture_output=True, text=True, timeout=30)
    words = run.stdout.split()
    return {words[index + 1].rstrip(".") for index, word in enumerate(words[:-1]) if word == "Env:"}


def test_the_statefulset_agrees_with_the_node_and_the_other_manifests() -> None:
    statefulset = one("StatefulSet")
    pod = statefulset["spec"]["template"]
    container = pod["spec"]["containers"][0]
    environment = {item["name"]: item.get("value") for item in container["env"]}
    # Every variable is a setting of the node, or one the hook reads.
    settings = node_settings()
    assert {"NODE_ID", "SEEDS", "MAX_MEMORY_MB", "TOKENS_FILE"} <= settings
    unknown = set(environment) - settings - {"POD_NAME", "POD_NAMESPACE", "STATEFULSET_NAME"}
    assert unknown == set(), unknown
    # Stable names: the pod's name is its NODE_ID and, through the headless Service, its address.
    assert environment["NODE_ID"] == "$(POD_NAME)"
    assert environment["ADVERTISE_HOST"].startswith("$(POD_NAME).cache-peers.")
    seeds = environment["SEEDS"].split(",")
    assert len(seeds) == 3 and all(
        seed == f"cache-{index}.cache-peers.$(POD_NAMESPACE).svc.cluster.local:9000" for index, seed in enumerate(seeds)
    )
    assert int(environment["PEER_PORT"]) == 9000 and statefulset["spec"]["serviceName"] == "cache-peers"

    # Memory: the request covers MAX_MEMORY_MB and a quarter more, the limit lies above it.
    def mebibytes(quantity: str) -> int:
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
        return int(number) * (1024 if unit == "Gi" else 1)

    limit_mb = int(environment["MAX_MEMORY_MB"])
    resources = container["resources"]
    assert mebibytes(resources["requests"]["memory"]) >= limit_mb * 1.25
    assert mebibytes(resources["limits"]["memory"]) > mebibytes(resources["requests"]["memory"])
    # Probes: readiness on /ready, liveness on /health, through the named HTTP port.
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == int(environment["PORT"]) and ports["resp"] == int(environment["RESP_PORT"])
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == environment["PORT"]
    # Secrets come as files from the Secret the example names.
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert environment["TOKENS_FILE"].startswith(mounts["secrets"] + "/")
    assert environment["CLUSTER_SECRET_FILE"].startswith(mounts["secrets"] + "/")
    secret = one("Secret")
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    for path in (environment["TOKENS_FILE"], environment["CLUSTER_SECRET_FILE"]):
        assert path.rsplit("/", 1)[1] in secret["stringData"]
    assert environment["WAL_DIR"] == mounts["data"]
    # The Services select the pods and reach ports they have; the headless one lists pods before
    # they are ready (a node must meet its peers to become ready at all).
    labels = pod["metadata"]["labels"]
    for service in documents("services.yaml"):
        assert service["spec"]["selector"].items() <= labels.items()
        assert all(port["targetPort"] in ports for port in service["spec"]["ports"])
    assert documents("services.yaml")[0]["spec"]["publishNotReadyAddresses"] is True
    # The disruption budget keeps a quorum of every key's replicas.
    factor = int(environment["REPLICATION_FACTOR"])
    budget = one("PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] <= factor - (factor // 2 + 1)
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    # The hook may read the StatefulSet, and nothing else.
    role = one("Role")
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "resourceNames": ["cache"], "verbs": ["get"]}
    ]
    assert pod["spec"]["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]


class StandInAPI(http.server.BaseHTTPRequestHandler):
    """Answers GET .../statefulsets/cache with `replicas`, as the API server does."""

    replicas = 3
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        StandInAPI.requests.append(self.path)
        body = json.dumps(
            {"kind": "StatefulSet", "spec": {"replicas": StandInAPI.replicas}, "status": {"replicas": 3}}, indent=2
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def run_hook(api: str, tmp_path: Path, pod: str, port: int) -> subprocess.CompletedProcess[str]:
    account = tmp_path / "serviceaccount"
    account.mkdir(exist_ok=True)
    (account / "token").write_text("stand-in-token")
    (account / "ca.crt").write_text("")
    script = tmp_path / "prestop.sh"
    script.write_text(one("ConfigMap")["data"]["prestop.sh"])
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "POD_NAME": pod,
        "POD_NAMESPACE": "default",
        "STATEFULSET_NAME": "cache",
        "PORT": str(port),
        "SERVICE_ACCOUNT_DIR": str(account),
        "KUBERNETES_API": api,
    }
    return subprocess.run(["/bin/sh", str(script)], env=environment, capture_output=True, text=True, timeout=120)


def test_the_prestop_hook_leaves_only_when_the_statefulset_shrinks(cluster: Cluster, api: str, tmp_path: Path) -> None:
    nodes = cluster.start(2)
    stopping = nodes[1]
    # A restart (pod 1 of 2): the hook asks the API, stays, and the node goes on serving.
    StandInAPI.replicas = 2
    run = run_hook(api, tmp_path, "cache-1", stopping.port)
    assert run.returncode == 0 and "staying" in run.stdout, run.stdout + run.stderr
    assert StandInAPI.requests[-1] == "/apis/apps/v1/namespaces/default/statefulsets/cache"
    assert stopping.process.poll() is None
    assert stopping.get_json("/cluster")["leaving"] is None
    # An API that cannot be read means "stay" too.
    run = run_hook("http://127.0.0.1:1", tmp_path, "cache-1", stopping.port)
    assert run.returncode == 0 and "not known" in run.stdout, run.stdout + run.stderr
    assert stopping.process.poll() is None
    # Scaled to one: pod 1 is past the end, leaves, and the hook returns once the node has exited.
    StandInAPI.replicas = 1
    started = time.monotonic()
    run = run_hook(api, tmp_path, "cache-1", stopping.port)
    assert run.returncode == 0 and "leaving the cluster" in run.stdout, run.stdout + run.stderr
    stopping.process.wait(timeout=30)
    assert time.monotonic() - started < 60
    listed = nodes[0].get_json("/cluster")["members"]
    assert isinstance(listed, list)
    members = {member["id"]: member["status"] for member in listed}
    assert members[stopping.node_id] == "left", members
