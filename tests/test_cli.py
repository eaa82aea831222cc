"""The ``homepilot`` command as a user runs it: run, validate, nodes, and a real serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from websockets.sync.client import connect

from engine.settings import get_settings
from tests.conftest import PACKS
from tests.serving import descendants, free_port, homepilot_serve, living

HOMEPILOT = str(Path(sys.executable).parent / "homepilot")


def homepilot(*args: str, home: Path, timeout: float = 180,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOMEPILOT_HOME": str(home), "HOMEPILOT_RAY_DASHBOARD": "false"}
    return subprocess.run([HOMEPILOT, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False, cwd=cwd)


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


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_run_reads_pictures_in_the_current_folder(tmp_path, executor):
    """From the command line a graph may read the files where it is run (the person at
    the terminal owns them), by a path relative to that folder or a full one."""
    from PIL import Image

    here = tmp_path / "work"
    here.mkdir()
    Image.new("RGB", (12, 10), "red").save(here / "photo.png")
    graph = {"name": "size", "inputs": {"image": {"type": "STRING"}},
             "nodes": {"load": {"type": "image.Load", "inputs": {"path": "${inputs.image}"}}},
             "outputs": {"width": "${load.width}"}}
    (here / "size.yaml").write_text(yaml.safe_dump(graph))
    for image in ("photo.png", str(here / "photo.png")):
        done = homepilot("run", "size.yaml", "--set", f"image={image}", "--executor",
                         executor, "--json", home=tmp_path / "home", cwd=here)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["outputs"] == {"width": 12}


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


@pytest.mark.parametrize("whole_group", [False, True], ids=["kill-pid", "kill-group"])
def test_sigterm_cancels_a_long_generation_and_the_server_exits_at_once(tmp_path, test_pack,
                                                                        whole_group):
    """`kill PID` while a 150-step picture is drawing (or SIGTERM to the whole process
    group, Ray's processes too, as systemd sends it): the run is cancelled, the request
    waiting on it answers 503, Ray and its model hosts stop, and the process exits 0 within
    10 s (it used to wait for the whole generation, and then exit 15)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(get_settings().models_dir)
    env = {"HOMEPILOT_RAY_DASHBOARD_PORT": str(free_port())}
    with homepilot_serve(home, env=env) as (base, process):
        replies: list[httpx.Response | httpx.HTTPError] = []
        asking = threading.Thread(target=lambda: replies.append(imagine(base, steps=150)))
        asking.start()
        wait_until_drawing(base)
        below = descendants(process.pid)
        (os.killpg if whole_group else os.kill)(process.pid, signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = process.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("homepilot serve was still running 10 s after SIGTERM")
        took = time.monotonic() - signalled
        asking.join(10)
    assert code == 0, process.stdout.read().decode()
    assert took < 10
    [reply] = replies
    assert isinstance(reply, httpx.Response), reply
    assert (reply.status_code, reply.json()["code"]) == (503, "cancelled")
    assert no_survivors(below) == set()


def imagine(base: str, steps: int) -> httpx.Response | httpx.HTTPError:
    """POST /chat in imagine mode (150 steps at 128 px take minutes on two cores)."""
    try:
        return httpx.post(f"{base}/chat", timeout=120, json={
            "message": "a lighthouse", "mode": "imagine", "imgWidth": 128, "imgHeight": 128,
            "imgSteps": steps, "imgSeed": 1, "imgPreset": "custom"})
    except httpx.HTTPError as exc:
        return exc


ENDED = {"event: run_finished", "event: run_failed", "event: run_cancelled"}


def wait_until_drawing(base: str) -> None:
    """Until the one run on the server reports its first diffusion step."""
    deadline = time.monotonic() + 60
    runs: list = []
    while not runs:
        assert time.monotonic() < deadline, "no run started"
        runs = httpx.get(f"{base}/runs", timeout=10).json()
        time.sleep(0.2)
    with httpx.stream("GET", f"{base}/runs/{runs[0]['run_id']}/events", timeout=60) as events:
        for line in events.iter_lines():
            if line == "event: node_progress":
                return
            assert line not in ENDED, line  # the run ended before drawing
    raise AssertionError("the run ended without a step")


def no_survivors(pids: set[int], timeout: float = 10) -> set[int]:
    """Which of ``pids`` still run after ``timeout`` (Ray's workers stop a moment after
    its raylet)."""
    deadline = time.monotonic() + timeout
    while living(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return living(pids)


def test_a_second_server_starts_its_own_ray_with_its_dashboard_on_a_free_port(tmp_path):
    """Two servers on one machine, configured alike: the second finds the dashboard port
    taken and uses the next free one, and starts its own Ray even with RAY_ADDRESS naming
    the first's (it used to fail with "Failed to bind to 127.0.0.1:8265")."""
    wanted = free_port()
    env = {"HOMEPILOT_RAY_DASHBOARD_PORT": str(wanted)}
    with homepilot_serve(tmp_path / "a", env=env) as (first, one):
        one_status = httpx.get(f"{first}/engine/status", timeout=30).json()
        assert one_status["dashboard_url"] == f"http://127.0.0.1:{wanted}"
        env["RAY_ADDRESS"] = one_status["ray_address"]
        with homepilot_serve(tmp_path / "b", env=env) as (second, two):
            two_status = httpx.get(f"{second}/engine/status", timeout=30).json()
            url = two_status["dashboard_url"]
            assert url.startswith("http://127.0.0.1:") and url != one_status["dashboard_url"]
            assert two_status["ray_address"] != one_status["ray_address"]
            assert httpx.get(url, timeout=30).status_code == 200  # a dashboard answers there
            below = descendants(one.pid) | descendants(two.pid)
            for process in (two, one):  # each stops its own Ray: no `ray stop`
                os.kill(process.pid, signal.SIGTERM)
                assert process.wait(30) == 0
    output = two.stdout.read().decode()
    assert f"Ray dashboard: {url}" in output
    assert f"Ray dashboard port {wanted} is taken" in output
    assert f"RAY_ADDRESS={one_status['ray_address']} is ignored" in output
    assert no_survivors(below) == set()


def test_run_fills_the_placeholders_of_a_comfyui_workflow_file(test_pack):
    """HomePilot's workflow files: --set fills {{placeholders}}, whole-string ones typed."""
    workflow = Path(__file__).resolve().parents[1] / "graphs" / "comfy" / "txt2img.json"
    home = get_settings().home  # the test home: its model store holds the test pack
    done = homepilot("run", str(workflow), "--set", "prompt=a red fox", "--set", "seed=7",
                     "--set", "ckpt_name=test-sd-tiny-ckpt", "--set", "width=64",
                     "--set", "height=48", "--set", "steps=2", "--executor", "local",
                     "--json", home=home, timeout=300)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["status"] == "success"
    (shown,) = body["ui"]["9"]["images"]
    from PIL import Image

    with Image.open(home / "files" / shown["subfolder"] / shown["filename"]) as picture:
        assert picture.size == (64, 48)
    missing = homepilot("run", str(workflow), "--set", "seed=7", "--executor", "local",
                        home=home, timeout=300)
    assert missing.returncode == 2 and "graph input 'prompt' is required" in missing.stderr
