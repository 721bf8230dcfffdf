"""deploy/mlflow/: the compose stack and its Kubernetes twin. The server's command line
goes through MLflow's own CLI parser; no credential is written in any file."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from urllib.parse import urlparse

import pytest

from .helpers import (
    DEPLOY,
    SECRET_NAME,
    compose_interpolate,
    compose_variables,
    containers,
    env_file,
    load_yaml,
    load_yaml_docs,
    parse_mlflow_server,
    readme_created_secrets,
    secret_refs,
)

MLFLOW = DEPLOY / "mlflow"
COMPOSE = MLFLOW / "docker-compose.yaml"
EXAMPLE = MLFLOW / ".env.example"


def compose(env: dict[str, str] | None = None) -> dict:
    import yaml

    return yaml.safe_load(compose_interpolate(COMPOSE.read_text(), env or env_file(EXAMPLE)))


def test_compose_runs_mlflow_on_postgres_with_minio_artifacts():
    services = compose()["services"]
    assert {"postgres", "minio", "mlflow"} <= set(services)
    params = parse_mlflow_server(services["mlflow"]["command"])
    backend = urlparse(params["backend_store_uri"])
    assert backend.scheme == "postgresql+psycopg" and backend.hostname == "postgres" and backend.password is None
    assert params["artifacts_destination"] == "s3://mlflow"
    assert params["host"] == "0.0.0.0" and params["port"] == 5000
    assert "mlflow:*" in params["allowed_hosts"].split(","), "Ray pods call it http://mlflow:5000"
    env = services["mlflow"]["environment"]
    assert urlparse(env["MLFLOW_S3_ENDPOINT_URL"]).hostname == "minio"
    assert env["PGPASSWORD"] == env_file(EXAMPLE)["POSTGRES_PASSWORD"], "libpq's password, not the URI's"
    buckets = " ".join(services["buckets"]["command"])
    assert "local/mlflow" in buckets and "local/ray-results" in buckets
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_publishes_ports_on_loopback_only():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"
    raw = COMPOSE.read_text()
    assert all(p.startswith('"${BIND_ADDRESS:-127.0.0.1}:') for p in re.findall(r'- ("[^"]*:\d+:\d+")', raw))


def test_compose_takes_every_credential_from_the_env_file():
    raw = load_yaml(COMPOSE)  # before interpolation
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) or key in ("POSTGRES_USER", "MINIO_ROOT_USER", "AWS_ACCESS_KEY_ID"):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", str(value)), f"{name}.{key} = {value!r} is not a ${{VAR}} reference"
    assert compose_variables(COMPOSE.read_text()) <= set(env_file(EXAMPLE)), "every variable is documented in .env.example"
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        compose({k: v for k, v in env_file(EXAMPLE).items() if k != "POSTGRES_PASSWORD"})


def test_env_example_holds_placeholders_and_make_env_writes_random_private_values(tmp_path):
    example = env_file(EXAMPLE)
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "change-me", f"{key}: only placeholders in a committed file"
    out = tmp_path / "conf" / "mlflow.env"
    subprocess.run(["sh", str(MLFLOW / "make-env.sh"), str(out)], check=True, capture_output=True)
    made = env_file(out)
    assert set(made) == set(example)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    for key in made:
        if SECRET_NAME.search(key):
            assert re.fullmatch(r"[0-9a-f]{48}", made[key]), key
    again = subprocess.run(["sh", str(MLFLOW / "make-env.sh"), str(out)], capture_output=True)
    assert again.returncode != 0 and env_file(out) == made, "never overwrites"
    parse_mlflow_server(compose(made)["services"]["mlflow"]["command"])


def k8s_docs() -> list[dict]:
    return load_yaml_docs(MLFLOW / "kubernetes.yaml")


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == kind}


def test_kubernetes_stack_has_deployments_and_cluster_ip_services_for_mlflow_postgres_minio():
    api = {"Deployment": "apps/v1", "Service": "v1", "PersistentVolumeClaim": "v1", "Job": "batch/v1"}
    for d in k8s_docs():
        assert d["apiVersion"] == api[d["kind"]], d["kind"]
    deployments, services = by_kind("Deployment"), by_kind("Service")
    assert {"mlflow", "postgres", "minio"} <= set(deployments) and {"mlflow", "postgres", "minio"} <= set(services)
    for name, dep in deployments.items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
    for name, svc in services.items():
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", f"{name}: reached by port-forward only"
        dep = next(d for d in deployments.values()
                   if svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items())
        port_names = {p["name"] for c in containers(dep["spec"]["template"]["spec"]) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{name}: targetPort {port['targetPort']}"
    claims = set(by_kind("PersistentVolumeClaim"))
    for dep in deployments.values():
        for vol in dep["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims


def test_kubernetes_mlflow_server_args_parse_and_point_at_the_services():
    dep = by_kind("Deployment")["mlflow"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    env_names = {e["name"] for e in c["env"]}
    values = {name: "x" for name in env_names} | {"POD_NAMESPACE": "ray-unlearn", "POSTGRES_USER": "mlflow"}
    for arg in c["args"]:
        for var in re.findall(r"\$\((\w+)\)", arg):
            assert var in env_names, f"$({var}) is not in the container's env (Kubernetes would leave it as is)"
    args = [re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], a) for a in c["args"]]
    params = parse_mlflow_server([*c["command"], *args])
    backend = urlparse(params["backend_store_uri"])
    services = by_kind("Service")
    assert backend.scheme == "postgresql+psycopg" and backend.password is None
    assert backend.port == services[backend.hostname]["spec"]["ports"][0]["port"]
    assert params["artifacts_destination"] == "s3://mlflow"
    allowed = params["allowed_hosts"].split(",")
    assert {"mlflow:*", "localhost:*", "127.0.0.1:*"} <= set(allowed)
    assert "mlflow.ray-unlearn.svc.cluster.local:*" in allowed
    env = {e["name"]: e for e in c["env"]}
    endpoint = urlparse(env["MLFLOW_S3_ENDPOINT_URL"]["value"])
    assert endpoint.port in {p["port"] for p in services[endpoint.hostname]["spec"]["ports"]}
    assert {"PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)


def test_kubernetes_manifests_reference_secrets_and_never_inline_them():
    docs = k8s_docs()
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are created by the operator (README), not committed"
    for d in docs:
        if d["kind"] not in ("Deployment", "Job"):
            continue
        for c in containers(d["spec"]["template"]["spec"]):
            for e in c.get("env", []):
                if SECRET_NAME.search(e["name"]) or e["name"] in ("POSTGRES_USER", "MINIO_ROOT_USER", "AWS_ACCESS_KEY_ID"):
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], f"{d['metadata']['name']}: {e['name']}"
    refs = secret_refs(docs)
    assert refs == {"mlflow-postgres", "mlflow-minio"} and refs <= readme_created_secrets()
