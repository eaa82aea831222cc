"""ray_cluster.yaml is valid for the installed Ray's own cluster-launcher schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_the_cluster_file_follows_rays_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    head = types[config["head_node_type"]]["resources"]
    assert head.get("GPU", 0) == 0 and head["CPU"] > 0
    assert any(t["resources"].get("GPU", 0) > 0 for t in types.values())


def test_a_broken_cluster_file_would_be_caught():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "one"
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as exc:
        assert "GPU" in str(exc.path) or "one" in exc.message
    else:
        raise AssertionError("an invalid GPU count passed the schema")
