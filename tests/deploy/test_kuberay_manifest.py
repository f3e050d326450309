"""The KubeRay manifests in deploy/kuberay/ against the vendored RayService CRD and this repo.

The RayService is validated against the CRD's ``openAPIV3Schema`` with jsonschema, turned into
plain JSON Schema the way the API server reads it: ``x-kubernetes-int-or-string`` accepts an
integer or a string, ``nullable`` accepts null, and an object with declared properties rejects
unknown fields unless ``x-kubernetes-preserve-unknown-fields`` is set (kubectl's default strict
field validation rejects them too; without it they would be dropped silently). CEL rules
(``x-kubernetes-validations``) are not evaluated. The embedded Serve config is checked against
Ray's own schema and against serving/deployments.py, configs/serve.yaml and the settings.
"""

from __future__ import annotations

import copy
import functools
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"
KUBERAY_VERSION = "v1.7.0"
CRD_PATH = KUBERAY / "crd" / f"ray.io_rayservices-{KUBERAY_VERSION}.yaml"
MANIFEST_PATH = KUBERAY / "rayservice.yaml"
SECRET_PATH = KUBERAY / "secret.example.yaml"
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def one_of_kind(path: Path, kind: str) -> dict:
    found = [doc for doc in load_docs(path) if doc.get("kind") == kind]
    assert len(found) == 1, f"{path.name}: expected one {kind}, found {len(found)}"
    return found[0]


@functools.cache
def crd() -> dict:
    # libyaml when present: the CRD is ~1 MB (pure-Python loading takes seconds).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with CRD_PATH.open() as handle:
        docs = [doc for doc in yaml.load_all(handle, Loader=loader) if doc is not None]
    assert len(docs) == 1 and docs[0]["kind"] == "CustomResourceDefinition"
    return docs[0]


def crd_schema(api_version: str) -> dict:
    """The openAPIV3Schema of the CRD version that ``api_version`` (``ray.io/v1``) names."""
    group, _, version = api_version.partition("/")
    assert group == crd()["spec"]["group"], f"apiVersion {api_version!r}: not the CRD's group"
    for entry in crd()["spec"]["versions"]:
        if entry["name"] == version:
            assert entry["served"], f"apiVersion {api_version!r} is not served by the CRD"
            return entry["schema"]["openAPIV3Schema"]
    raise AssertionError(f"apiVersion {api_version!r}: the CRD has no version {version!r}")


def to_json_schema(node):
    """A Kubernetes structural schema as JSON Schema (draft 4, which OpenAPI v3.0 follows)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value) for key, value in node.items()}
    if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    open_object = out.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in out
    if "properties" in out and not open_object:
        out["additionalProperties"] = False
    return out


def validator_for(schema: dict) -> jsonschema.Draft4Validator:
    formats = jsonschema.FormatChecker()
    for name, (low, high) in INT_RANGES.items():
        formats.checks(name)(
            lambda value, low=low, high=high: not isinstance(value, int) or low <= value <= high
        )
    return jsonschema.Draft4Validator(to_json_schema(schema), format_checker=formats)


def field_path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(root)"


def schema_errors(obj: dict) -> list[str]:
    """Every schema violation of ``obj``, as ``path: message`` lines."""
    validator = validator_for(crd_schema(obj["apiVersion"]))
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{field_path(e.absolute_path)}: {e.message}" for e in errors]


def rayservice() -> dict:
    return one_of_kind(MANIFEST_PATH, "RayService")


def serve_config(service: dict) -> dict:
    return yaml.safe_load(service["spec"]["serveConfigV2"])


def groups(service: dict) -> Iterator[tuple[str, dict]]:
    """(group name, pod template spec) for the head and every worker group."""
    cluster = service["spec"]["rayClusterConfig"]
    yield "head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group["template"]["spec"]


def ray_container(pod_spec: dict) -> dict:
    return pod_spec["containers"][0]  # KubeRay runs Ray in the first container


def worker_group(service: dict, name: str) -> dict:
    found = [
        g for g in service["spec"]["rayClusterConfig"]["workerGroupSpecs"] if g["groupName"] == name
    ]
    assert found, f"no worker group {name!r}"
    return found[0]


# --- the vendored CRD and the schema conversion ------------------------------------------


def test_vendored_crd_names_its_release_source_and_licence():
    header = "".join(line for line in CRD_PATH.read_text().splitlines(True)[:10] if line[0] == "#")
    assert KUBERAY_VERSION in header
    assert "github.com/ray-project/kuberay" in header and "ray.io_rayservices.yaml" in header
    assert "Apache License 2.0" in header
    assert crd()["spec"]["names"]["kind"] == "RayService"
    storage = [v["name"] for v in crd()["spec"]["versions"] if v.get("storage")]
    assert storage == ["v1"]


def test_kubernetes_extensions_become_json_schema():
    schema = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "quantity": {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": "^[0-9]+(Gi|Mi)?$",
                "x-kubernetes-int-or-string": True,
            },
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "strict": {"type": "object", "properties": {"a": {"type": "string"}}},
            "when": {"type": "string", "nullable": True},
            "count": {"type": "integer", "format": "int32"},
        },
    }
    validator = validator_for(schema)

    def ok(value: dict) -> bool:
        return validator.is_valid(value)

    assert ok({"port": 8000}) and ok({"port": "serve"}) and not ok({"port": 1.5})
    assert ok({"quantity": 2}) and ok({"quantity": "8Gi"}) and not ok({"quantity": "8 GB"})
    assert ok({"free": {"anything": {"goes": [1]}}})
    assert not ok({"strict": {"a": "x", "typo": 1}}) and not ok({"unknown": 1})
    assert ok({"when": None}) and not ok({"count": 2**31}) and ok({"count": 2**31 - 1})


# --- the RayService against the CRD ------------------------------------------------------


def test_rayservice_validates_against_the_crd_schema():
    service = rayservice()
    assert service["apiVersion"] == "ray.io/v1"
    assert schema_errors(service) == []
    # KubeRay appends "-serve-svc" (10 characters) to the name of a 63-character Service name.
    name = service["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 53, name


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        (("workerGroupSpecs", 1, "replicas"), "two", "workerGroupSpecs[1].replicas: 'two' is not"),
        (("workerGroupSpecs", 0, "maxReplicas"), 2**31, "workerGroupSpecs[0].maxReplicas:"),
        (("enableInTreeAutoscaling",), "yes", "enableInTreeAutoscaling: 'yes' is not"),
        (("workerGroupSpecs", 0, "replicaCount"), 2, "workerGroupSpecs[0]: Additional properties"),
    ],
)
def test_a_wrong_field_is_rejected_naming_its_path(where, value, expected):
    service = copy.deepcopy(rayservice())
    target = service["spec"]["rayClusterConfig"]
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    errors = schema_errors(service)
    assert len(errors) == 1, errors
    assert errors[0].startswith("spec.rayClusterConfig." + expected), errors


def test_a_wrong_type_deep_in_the_pod_template_is_rejected():
    service = copy.deepcopy(rayservice())
    container = ray_container(worker_group(service, "gpu")["template"]["spec"])
    container["resources"]["limits"]["nvidia.com/gpu"] = ["1"]  # int-or-string, not a list
    container["ports"][0]["containerPort"] = "8000"
    errors = schema_errors(service)
    prefix = "spec.rayClusterConfig.workerGroupSpecs[1].template.spec.containers[0]."
    assert [e.split(":")[0] for e in errors] == [
        prefix + "ports[0].containerPort",
        prefix + "resources.limits.nvidia.com/gpu",
    ], errors


# --- the embedded Serve config against this repo -----------------------------------------


def test_serve_config_is_the_application_in_this_repo():
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    from serving.settings import Settings

    config = serve_config(rayservice())
    schema = ServeDeploySchema.model_validate(config)  # Ray's own check of a config file
    assert len(schema.applications) == 1
    app = schema.applications[0]
    module_name, _, attr = app.import_path.partition(":")
    assert (ROOT / (module_name.replace(".", "/") + ".py")).is_file(), app.import_path
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr)), app.import_path

    unknown = set(app.args) - set(Settings.model_fields)
    assert not unknown, f"args that are not serving.settings.Settings fields: {unknown}"
    Settings(**app.args)  # the values validate
    assert app.args["serving_mode"] == "split"  # the model deployment holds the GPUs

    deployments = {v.name: v for v in vars(module).values() if isinstance(v, serve.Deployment)}
    for entry in app.deployments:
        options = entry.model_dump(exclude_unset=True)
        name = options.pop("name")
        assert name in deployments, f"deployment {name!r} is not in {module_name}"
        deployments[name].options(**options)  # Ray accepts the override
        # An override replaces the code's whole ray_actor_options (Ray's default is 1 CPU).
        actor = options.get("ray_actor_options")
        assert actor is None or "num_cpus" in actor, f"{name}: ray_actor_options without num_cpus"

    # The same application as configs/serve.yaml, which the single-machine tests run.
    local = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())["applications"][0]
    for key in ("name", "route_prefix", "import_path"):
        assert local[key] == getattr(app, key), key
    for key in ("model_uri", "serving_mode"):
        assert local["args"][key] == app.args[key], key
    configured = {d.name for d in app.deployments}
    assert {d["name"] for d in local["deployments"]} <= configured


def test_gpu_group_carries_the_model_replicas():
    service = rayservice()
    app = serve_config(service)["applications"][0]
    options = {d["name"]: d for d in app["deployments"]}
    model = options["model"]
    assert model["ray_actor_options"]["num_gpus"] == 1
    for name in set(options) - {"model"}:
        assert not options[name].get("ray_actor_options", {}).get("num_gpus"), name

    gpu = worker_group(service, "gpu")
    pod = gpu["template"]["spec"]
    resources = ray_container(pod)["resources"]
    gpus = int(resources["limits"]["nvidia.com/gpu"])
    assert gpus >= 1 and int(resources["requests"]["nvidia.com/gpu"]) == gpus
    assert "nvidia.com/gpu" in str(pod.get("nodeSelector", {})) + str(pod.get("tolerations", []))
    assert model["autoscaling_config"]["max_replicas"] <= gpu["maxReplicas"] * gpus
    assert model["ray_actor_options"]["num_cpus"] <= float(resources["limits"]["cpu"])

    for name, spec in groups(service):
        if name != "gpu":
            assert "nvidia.com/gpu" not in ray_container(spec)["resources"]["limits"], name
    api_cpus = options["api"]["ray_actor_options"]["num_cpus"]
    cpu_limits = ray_container(worker_group(service, "cpu")["template"]["spec"])["resources"]
    assert api_cpus <= float(cpu_limits["limits"]["cpu"])
    # No replicas on the head: the cluster survives a replica's crash there.
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"


def test_ray_version_and_image_agree_with_the_project():
    service = rayservice()
    ray_version = Version(service["spec"]["rayClusterConfig"]["rayVersion"])
    assert ray_version >= Version("2.53"), "KubeRay's HTTP probes need Ray >= 2.53"
    pyproject = (ROOT / "pyproject.toml").read_text()
    ray_requirement = Requirement(re.search(r'"(ray\[serve\][^"]*)"', pyproject).group(1))
    assert ray_requirement.specifier.contains(ray_version), ray_requirement
    images = {ray_container(spec)["image"] for _, spec in groups(service)}
    assert len(images) == 1, f"every group runs the same image: {images}"
    assert images.pop().endswith("/recsys:gpu")  # Dockerfile.gpu's tag


# --- secrets, variables and probes -------------------------------------------------------


def secret_refs(container: dict) -> dict[str, dict]:
    return {
        env["name"]: env["valueFrom"]["secretKeyRef"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }


def test_secret_keys_referenced_by_env_exist_in_the_example_secret():
    from recsys.store.db import normalize_url

    secret = one_of_kind(SECRET_PATH, "Secret")
    keys = set(secret["stringData"])
    used = set()
    for name, spec in groups(rayservice()):
        refs = secret_refs(ray_container(spec))
        for variable in ("RECSYS_DATABASE_URL", "RECSYS_MLFLOW_TRACKING_URI", "RECSYS_ADMIN_KEY"):
            assert variable in refs, f"group {name}: {variable} does not come from the Secret"
        for variable, ref in refs.items():
            assert ref["name"] == secret["metadata"]["name"], f"group {name}: {variable}"
            assert ref["key"] in keys, f"group {name}: {variable} names a missing key {ref['key']}"
            used.add(ref["key"])
    assert keys == used, f"keys no pod reads: {keys - used}"
    assert normalize_url(secret["stringData"]["database-url"]).get_backend_name() == "postgresql"


def test_every_recsys_variable_is_a_setting():
    from recsys.campaigns.settings import CampaignSettings
    from recsys.privacy.settings import PrivacySettings
    from serving.rate_limits import RateLimitSettings
    from serving.settings import Settings

    known = {
        "RECSYS_" + field.upper()
        for cls in (Settings, CampaignSettings, PrivacySettings, RateLimitSettings)
        for field in cls.model_fields
    }
    for name, spec in groups(rayservice()):
        names = {env["name"] for env in ray_container(spec)["env"]}
        unknown = {n for n in names if n.startswith("RECSYS_")} - known
        assert not unknown, f"group {name}: variables no settings class reads: {unknown}"


def test_serving_pods_are_ready_only_when_readyz_answers():
    from serving.routes.health import router

    assert "/readyz" in {route.path for route in router.routes}
    service = rayservice()
    serve_port = serve_config(service)["http_options"]["port"]
    for name, spec in groups(service):
        container = ray_container(spec)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["serve"] == serve_port, name
        probe = container.get("readinessProbe")
        if name == "head":
            # KubeRay deploys the application only once the head is ready: no /readyz there.
            assert probe is None
            continue
        assert probe["httpGet"]["path"] == "/readyz", name
        assert probe["httpGet"]["port"] in ("serve", serve_port), name
