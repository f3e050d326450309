"""What build_app asks Ray for on a cluster: placement by node labels with a fallback, and the
model deployment's autoscaling from the settings (and configs/serve.yaml). No cluster needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from serving.settings import Settings

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]


def deployments(app) -> dict:
    """name -> the Deployment of every deployment bound in ``app`` (the ingress and those
    passed to it); Ray has no public accessor for an Application's graph."""
    found = {}

    def visit(node) -> None:
        deployment = node._bound_deployment
        found[deployment.name] = deployment
        for arg in deployment.init_args:
            if hasattr(arg, "_bound_deployment"):
                visit(arg)

    visit(app)
    return found


def build(**fields):
    from serving.deployments import build_app

    return deployments(build_app(Settings(device="cpu", **fields)))


def test_model_autoscales_between_the_settings_bounds():
    built = build(
        serving_mode="split", model_min_replicas=2, model_max_replicas=5,
        model_target_ongoing_requests=3, model_upscale_delay_s=1, model_downscale_delay_s=4,
        model_look_back_s=2,
    )  # fmt: skip
    scaling = built["model"]._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (2, 5)
    assert scaling.target_ongoing_requests == 3
    assert (scaling.upscale_delay_s, scaling.downscale_delay_s) == (1, 4)
    assert scaling.look_back_period_s == 2
    assert scaling.metrics_interval_s < scaling.look_back_period_s  # reports inside it
    assert built["api"]._deployment_config.autoscaling_config is None


def test_fixed_model_replicas_without_a_maximum():
    built = build(serving_mode="split", model_replicas=3)
    assert built["model"]._deployment_config.autoscaling_config is None
    assert built["model"].num_replicas == 3


def test_replicas_prefer_their_labelled_nodes_and_fall_back_to_any():
    built = build(
        serving_mode="split",
        model_node_labels={"recsys-node": "gpu"},
        ingress_node_labels={"recsys-node": "head"},
    )
    model = built["model"].ray_actor_options
    assert model["label_selector"] == {"recsys-node": "gpu"}
    assert model["fallback_strategy"] == [{"label_selector": {}}]  # any node, once none has room
    for name in ("api", "campaign_worker"):
        options = built[name].ray_actor_options
        assert options["label_selector"] == {"recsys-node": "head"}, name
        assert options["num_cpus"] > 0, name  # labels are added to, not instead of, the CPUs

    plain = build(serving_mode="split")
    assert all("label_selector" not in d.ray_actor_options for d in plain.values())

    colocated = build(serving_mode="colocated", ingress_node_labels={"recsys-node": "head"})
    assert colocated["api"].ray_actor_options["label_selector"] == {"recsys-node": "head"}


def test_bounds_and_labels_from_the_environment(monkeypatch):
    monkeypatch.setenv("RECSYS_MODEL_NODE_LABELS", '{"recsys-node": "worker"}')
    monkeypatch.setenv("RECSYS_MODEL_MAX_REPLICAS", "3")
    settings = Settings()
    assert settings.model_node_labels == {"recsys-node": "worker"}
    assert settings.model_max_replicas == 3
    with pytest.raises(ValidationError, match="model_max_replicas .* model_min_replicas"):
        Settings(model_min_replicas=4, model_max_replicas=2)
    with pytest.raises(ValidationError, match="model_target_ongoing_requests"):
        Settings(model_target_ongoing_requests=0)


def test_serve_config_autoscales_the_model():
    config = yaml.safe_load((ROOT / "configs" / "serve.yaml").read_text())
    args = config["applications"][0]["args"]
    assert set(args) <= set(Settings.model_fields), set(args) - set(Settings.model_fields)
    built = build(**{k: v for k, v in args.items() if k != "device"})
    scaling = built["model"]._deployment_config.autoscaling_config
    assert scaling.min_replicas == args["model_min_replicas"] == 1
    assert scaling.max_replicas == args["model_max_replicas"] > 1
    assert scaling.target_ongoing_requests == args["model_target_ongoing_requests"]
