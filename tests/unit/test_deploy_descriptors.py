"""The deploy descriptors (issue 20, deliverable 4) say what the Procfile and Dockerfile say.

The Kubernetes manifests are validated offline against Kubernetes 1.30's schemas with
`kubernetes-validate` (strict: an unknown field is an error). Render has no offline
validator, so render.yaml is checked for the shape and the fields this service relies on.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"
DATABASE_SECRET = "marketedge-database"
DATABASE_VARIABLES = {"DATABASE_URL", "DATABASE_DIRECT_URL"}


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] != "Kustomization":
                found.append((path.name, document))
    return found


def manifest(kind: str, name: str) -> dict[str, Any]:
    matches = [
        doc for _, doc in manifests() if (doc["kind"], doc["metadata"]["name"]) == (kind, name)
    ]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def command_line(container: dict[str, Any]) -> str:
    return " ".join(container["command"] + container.get("args", []))


@pytest.mark.parametrize(
    "document", [doc for _, doc in manifests()], ids=[f"{f}:{d['kind']}" for f, d in manifests()]
)
def test_every_manifest_is_valid_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    broken = copy.deepcopy(manifest("Deployment", "marketedge-web"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {path.name for path in KUBERNETES.glob("*.yaml")}
    assert set(kustomization["resources"]) == files - {"kustomization.yaml", "secret.example.yaml"}


def test_release_job_environment_holds_only_the_database_secret() -> None:
    job = manifest("Job", "marketedge-release")
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert all(set(volume) == {"name", "emptyDir"} for volume in pod.get("volumes", []))
    for container in pod_containers(job):
        assert "envFrom" not in container
        env = {item["name"]: item for item in container["env"]}
        assert "DATABASE_URL" in env
        assert set(env) <= DATABASE_VARIABLES
        for item in env.values():
            assert set(item) == {"name", "valueFrom"}
            assert item["valueFrom"]["secretKeyRef"]["name"] == DATABASE_SECRET
            assert item["valueFrom"]["secretKeyRef"]["key"] == item["name"]


def test_release_job_runs_the_procfiles_release_command() -> None:
    (container,) = pod_containers(manifest("Job", "marketedge-release"))
    assert command_line(container) == procfile()["release"]


def test_web_probes_tell_liveness_from_readiness() -> None:
    (web,) = pod_containers(manifest("Deployment", "marketedge-web"))
    assert command_line(web) == procfile()["web"]
    ports = {port["name"]: port["containerPort"] for port in web["ports"]}
    readiness, liveness = web["readinessProbe"]["httpGet"], web["livenessProbe"]["httpGet"]
    assert (readiness["path"], ports[readiness["port"]]) == ("/health/ready", 8000)
    assert (liveness["path"], ports[liveness["port"]]) == ("/health", 8000)
    assert {"name": "PORT", "value": "8000"} in web["env"]
    assert {"requests", "limits"} <= set(web["resources"])


def test_pods_run_as_the_dockerfiles_unprivileged_user() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user is not None
    for workload in (
        manifest("Deployment", "marketedge-web"),
        manifest("Job", "marketedge-release"),
    ):
        pod = workload["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert (pod["runAsUser"], pod["runAsGroup"]) == (int(user[1]), int(user[2]))
        for container in pod_containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]


def test_service_and_autoscaler_point_at_the_web_deployment() -> None:
    deployment = manifest("Deployment", "marketedge-web")
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    service = manifest("Service", "marketedge-web")
    assert service["spec"]["selector"].items() <= pods.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    target = manifest("HorizontalPodAutoscaler", "marketedge-web")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "marketedge-web")


def test_web_secret_references_are_the_two_secrets_of_the_example() -> None:
    examples = {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == "Secret"}
    (web,) = pod_containers(manifest("Deployment", "marketedge-web"))
    for item in web["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["key"] in examples[ref["name"]]["stringData"]


def readme_variables() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)` \|", (ROOT / "README.md").read_text(), re.MULTILINE))


def test_render_blueprint_runs_the_procfile_with_a_postgres() -> None:
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    assert set(blueprint) == {"services", "databases"}
    (web,) = blueprint["services"]
    assert (web["type"], web["runtime"]) == ("web", "docker")
    assert (ROOT / web["dockerfilePath"]).is_file()
    assert web["dockerCommand"] == procfile()["web"]
    assert web["preDeployCommand"] == procfile()["release"]
    assert web["healthCheckPath"] == "/health/ready"
    env = {item["key"]: item for item in web["envVars"]}
    assert set(env) <= readme_variables()
    source = env["DATABASE_URL"]["fromDatabase"]
    assert source["property"] == "connectionString"
    assert source["name"] in {database["name"] for database in blueprint["databases"]}
    for secret in ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "PUBLIC_URL"):
        assert env[secret] == {"key": secret, "sync": False}


def test_metrics_token_is_generated_on_render_and_optional_on_kubernetes() -> None:
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    (web,) = blueprint["services"]
    env = {item["key"]: item for item in web["envVars"]}
    assert env["METRICS_TOKEN"] == {"key": "METRICS_TOKEN", "generateValue": True}
    (container,) = pod_containers(manifest("Deployment", "marketedge-web"))
    variables = {item["name"]: item for item in container["env"]}
    reference = variables["METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "marketedge-web", "key": "METRICS_TOKEN", "optional": True}
