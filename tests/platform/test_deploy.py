"""deploy/: Kubernetes manifests valid against the Kubernetes schemas (offline, the schemas
kubernetes-validate ships), and the compose file and Dockerfile have what production needs."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.30.0"


def documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


@pytest.mark.parametrize("name,doc", documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_catches_a_broken_manifest() -> None:
    deployment = next(doc for _n, doc in documents() if doc["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"no": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_pieces_fit_together() -> None:
    docs = {doc["kind"]: doc for _n, doc in documents() if doc["kind"] != "ConfigMap"}
    configs = {doc["metadata"]["name"]: doc for _n, doc in documents() if doc["kind"] == "ConfigMap"}
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"} <= set(docs)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    drain = float(configs["voxline"]["data"]["VOXLINE_DRAIN_SECS"])
    assert pod["terminationGracePeriodSeconds"] > drain + 10  # the drain and the goodbye fit in
    assert pod["securityContext"]["runAsNonRoot"] is True
    hpa_metric = docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    from voxline.observability.metrics import metrics

    assert hpa_metric in {m.name for m in metrics().registry.collect()}
    annotations = docs["Ingress"]["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # websockets
    selector = docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert docs["Service"]["spec"]["selector"] == selector
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_compose_runs_the_whole_stack() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"voxline", "postgres", "redis", "coturn", "otel-collector"} <= set(services)
    assert "pgvector" in services["postgres"]["image"]
    env = services["voxline"]["environment"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector:")
    assert "turn:" in env["VOXLINE_ICE_SERVERS"]
    assert int(services["voxline"]["stop_grace_period"].rstrip("s")) > 25
    assert (DEPLOY / "otel" / "collector.yaml").exists()


def test_dockerfile_is_multi_stage_non_root_with_weights_apart() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+(?: AS (\w+))?", text, re.M)
    assert len(stages) >= 3 and "weights" in stages
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert text.index("COPY --from=weights") < text.index("COPY --from=code")  # weights layer first
