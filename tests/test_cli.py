"""The ``homepilot`` command as a user runs it: run, validate, nodes, and a real serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from websockets.sync.client import connect

from tests.conftest import PACKS
from tests.serving import free_port, homepilot_serve

HOMEPILOT = str(Path(sys.executable).parent / "homepilot")


def homepilot(*args: str, home: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOMEPILOT_HOME": str(home), "HOMEPILOT_RAY_DASHBOARD": "false"}
    return subprocess.run([HOMEPILOT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


@pytest.fixture
def chain_file(tmp_path: Path) -> Path:
    graph = {"name": "cli-chain", "inputs": {"start": {"type": "INT", "default": 1}},
             "nodes": {"a": {"type": "math.Add", "inputs": {"a": "${inputs.start}", "b": 2}},
                       "b": {"type": "math.Multiply", "inputs": {"a": "${a.result}", "b": 10}}},
             "outputs": {"value": "${b.result}"}}
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(graph))
    return path


def test_run_prints_json_with_outputs_and_what_ran(chain_file, tmp_path):
    done = homepilot("run", str(chain_file), "--set", "start=4", "--executor", "local", "--json",
                     home=tmp_path)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "success" and body["outputs"] == {"value": 60.0}
    assert sorted(body["executed"]) == ["a", "b"] and body["cached"] == []
    assert set(body["timings"]) == {"a", "b"} and body["run_id"]


def test_run_on_ray_gives_the_same_answer(chain_file, tmp_path):
    done = homepilot("run", str(chain_file), "--set", "start=4", "--executor", "ray", "--json",
                     home=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"value": 60.0}


def test_a_failing_run_exits_non_zero_with_the_structured_error(tmp_path):
    graph = tmp_path / "fail.yaml"
    failing = {"f": {"type": "test.Fail", "inputs": {"message": "nope"}}}
    graph.write_text(yaml.safe_dump({"nodes": failing, "outputs": {"v": "${f.value}"}}))
    done = homepilot("run", str(graph), "--executor", "local", "--json", "--custom-nodes",
                     str(PACKS), home=tmp_path)
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert (error["node_id"], error["error_type"], error["message"]) == ("f", "ValueError", "nope")


def test_validate_lists_every_problem_and_exits_non_zero(tmp_path):
    graph = tmp_path / "bad.yaml"
    graph.write_text(yaml.safe_dump({"nodes": {
        "a": {"type": "math.Add", "inputs": {"a": "${ghost.result}"}},
        "b": {"type": "no.Such", "inputs": {}}}}))
    done = homepilot("validate", str(graph), "--json", home=tmp_path)
    assert done.returncode == 1
    kinds = {(i["kind"], i["node_id"]) for i in json.loads(done.stdout)["issues"]}
    assert kinds == {("missing_node", "a"), ("unknown_node_type", "b")}
    human = homepilot("validate", str(graph), home=tmp_path)
    assert human.returncode == 1 and "2 problem(s)" in human.stderr


def test_nodes_json_exports_every_schema(tmp_path):
    done = homepilot("nodes", "--json", "--custom-nodes", str(PACKS), home=tmp_path)
    assert done.returncode == 0
    schemas = json.loads(done.stdout)
    assert schemas["math.Add"]["category"] == "math"
    assert schemas["MyAdd"]["api"] == "comfy" and schemas["V3Multiply"]["api"] == "comfy_v3"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real ``homepilot serve`` (Ray executor, dashboard on) on free loopback ports;
    yields (server URL, dashboard URL)."""
    dashboard = free_port()
    with homepilot_serve(tmp_path / "home", "--custom-nodes", str(PACKS),
                         env={"HOMEPILOT_RAY_DASHBOARD_PORT": str(dashboard)}) as (base, _):
        yield base, f"http://127.0.0.1:{dashboard}"


def test_a_comfyui_api_script_works_unchanged_against_serve(served):
    """The flow of ComfyUI's own websockets_api_example.py, byte for byte in spirit."""
    served, dashboard = served
    client_id = str(uuid.uuid4())
    prompt = {"3": {"class_type": "MyAdd", "inputs": {"a": 19, "b": 23}},
              "6": {"class_type": "MyTotal", "inputs": {"value": ["3", 0]}}}
    with connect(f"{served.replace('http', 'ws')}/ws?clientId={client_id}") as ws:
        data = json.dumps({"prompt": prompt, "client_id": client_id}).encode()
        request = urllib.request.Request(f"{served}/prompt", data=data)
        prompt_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["prompt_id"]
        while True:
            out = ws.recv(timeout=120)
            if isinstance(out, str):
                message = json.loads(out)
                data = message["data"]
                if message["type"] == "executing":
                    if data["node"] is None and data["prompt_id"] == prompt_id:
                        break
    with urllib.request.urlopen(f"{served}/history/{prompt_id}", timeout=30) as response:
        history = json.loads(response.read())[prompt_id]
    assert history["outputs"]["6"] == {"text": ["TOTAL=42"], "number": [42]}
    with urllib.request.urlopen(f"{served}/engine/status", timeout=30) as response:
        status = json.loads(response.read())
    assert status["executor"] == "ray" and status["cluster_resources"]["CPU"] >= 1
    with urllib.request.urlopen(f"{served}/my_pack/hello?name=serve", timeout=30) as response:
        assert json.loads(response.read())["hello"] == "serve"
    assert status["dashboard_url"] == dashboard
    assert any(name.startswith("prompt/3") for name in dashboard_task_names(dashboard))


def dashboard_task_names(dashboard: str) -> set[str]:
    """Task names the Ray dashboard lists (its API wants Ray's auth token)."""
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    request = urllib.request.Request(f"{dashboard}/api/v0/tasks?limit=200",
                                     headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 60
    names: set[str] = set()
    while time.monotonic() < deadline:  # task events reach the dashboard in batches
        with urllib.request.urlopen(request, timeout=30) as response:
            rows = json.loads(response.read())["data"]["result"]["result"]
        names = {row["name"] for row in rows}
        if any(name.startswith("prompt/") for name in names):
            return names
        time.sleep(1)
    return names


def test_models_list_show_and_remove(tmp_path):
    listed = homepilot("models", "list", "--json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    ids = {m["id"]: m for m in json.loads(listed.stdout)}
    assert ids["smollm2-135m-instruct"]["kind"] == "llm" and ids["all-minilm-l6-v2"]["bundled"]
    shown = homepilot("models", "show", "all-minilm-l6-v2", home=tmp_path)
    assert json.loads(shown.stdout)["format"] == "sentence-transformers"
    missing = homepilot("models", "show", "nope", home=tmp_path)
    assert missing.returncode == 1 and "not installed" in missing.stderr
    removed = homepilot("models", "remove", "all-minilm-l6-v2", "--yes", home=tmp_path)
    assert removed.returncode == 0
    assert not (tmp_path / "models" / "all-minilm-l6-v2").exists()
