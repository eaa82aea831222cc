"""The engine's native HTTP API: graphs by name, posted graphs, runs, events, schemas."""

from __future__ import annotations

import json

import pytest
import yaml

pytestmark = pytest.mark.parametrize("executor", ["local"], indirect=True)

CHAIN = {"name": "chain", "inputs": {"start": {"type": "INT", "default": 1}},
         "nodes": {"a": {"type": "test.Inc", "inputs": {"x": "${inputs.start}"}},
                   "b": {"type": "test.Steps", "inputs": {"count": 3}},
                   "c": {"type": "test.Sum", "inputs": {"a": "${a.value}", "b": "${b.value}"}}},
         "outputs": {"total": "${c.value}"}}


def save_graph(client, name: str, graph: dict) -> None:
    folder = client.app.state.homepilot.graphs_dir
    path = folder / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(graph))


def test_health_and_engine_status(client):
    health = client.get("/health").json()
    assert (health["ok"], health["service"], health["version"]) == (True, "homepilot-backend",
                                                                    "0.1.0")
    assert set(health["providers"]) == {"local", "openai_compat"}
    status = client.get("/engine/status").json()
    assert status["executor"] == "local" and status["node_types"] > 10
    assert {p["name"] for p in status["packs"]} == {"comfy_classic", "comfy_v3", "engine_nodes"}


def test_a_named_graph_is_listed_and_runs_with_inputs(client):
    save_graph(client, "demo/chain", CHAIN)
    listed = client.get("/graphs").json()
    assert [g["name"] for g in listed] == ["demo/chain"]
    assert listed[0]["inputs"]["start"]["default"] == 1 and listed[0]["nodes"] == 3
    assert client.get("/graphs/demo/chain").json()["nodes"]["a"]["type"] == "test.Inc"
    run = client.post("/graphs/demo/chain/runs", json={"inputs": {"start": 10}, "wait": True})
    assert run.status_code == 201
    body = run.json()
    assert body["status"] == "success" and body["outputs"] == {"total": 14}
    assert sorted(body["executed"]) == ["a", "b", "c"]
    assert set(body["timings"]) == {"a", "b", "c"}
    again = client.post("/graphs/demo/chain/runs", json={"inputs": {"start": 10}, "wait": True})
    assert again.json()["executed"] == [] and again.json()["cached"] == ["c"]
    fetched = client.get(f"/runs/{body['run_id']}").json()
    assert fetched["outputs"] == {"total": 14}


def test_events_stream_over_sse_and_websocket(client):
    run = client.post("/runs", json={"graph": CHAIN}).json()
    with client.stream("GET", f"/runs/{run['run_id']}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: ")]
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert [f["data"]["value"] for f in frames if f["type"] == "node_progress"] == [1, 2, 3]
    with client.websocket_connect(f"/runs/{run['run_id']}/ws") as socket:
        replayed = []
        while not replayed or replayed[-1]["type"] != "run_finished":
            replayed.append(json.loads(socket.receive_text()))
    assert [f["type"] for f in replayed] == kinds


def test_a_running_graph_can_be_cancelled(client):
    graph = {"nodes": {"w": {"type": "test.Wait", "inputs": {"seconds": 30}}},
             "outputs": {"w": "${w.value}"}}
    run = client.post("/runs", json={"graph": graph}).json()
    cancelled = client.post(f"/runs/{run['run_id']}/cancel")
    assert cancelled.status_code == 200
    client.app.state.homepilot.runs.get(run["run_id"]).handle.result(30)
    assert client.get(f"/runs/{run['run_id']}").json()["status"] == "cancelled"


def test_bad_requests_get_clear_4xx_answers_and_start_nothing(client):
    runs_before = len(client.app.state.homepilot.runs.records())
    invalid = client.post("/runs", json={"graph": {"nodes": {"a": {"type": "Nope"}}}})
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "invalid_graph"
    assert invalid.json()["issues"][0]["kind"] == "unknown_node_type"
    wrong_input = client.post("/runs", json={"graph": CHAIN, "inputs": {"start": "many"}})
    assert wrong_input.status_code == 400
    assert wrong_input.json()["issues"][0]["kind"] == "invalid_input_type"
    not_a_graph = client.post("/runs", json={"graph": {"nodes": "x"}})
    assert not_a_graph.status_code == 400 and not_a_graph.json()["ok"] is False
    malformed = client.post("/runs", content=b"{oops", headers={"content-type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["code"] == "invalid_request"
    wrong_type = client.post("/runs", json={"graph": CHAIN, "inputs": [1]})
    assert wrong_type.status_code == 422
    assert client.post("/graphs/missing/runs", json={}).status_code == 404
    assert client.get("/graphs/..%2Fetc").status_code in (400, 404)
    assert client.get("/runs/nope").status_code == 404
    assert client.post("/runs/nope/cancel").status_code == 404
    assert client.get("/nodes/Nope").status_code == 404
    assert client.get("/files/../../etc/passwd").status_code == 404
    assert len(client.app.state.homepilot.runs.records()) == runs_before


def test_validate_reports_every_problem(client):
    graph = {"nodes": {"a": {"type": "test.Limited", "inputs": {"value": 99}},
                       "b": {"type": "Nope"}}}
    body = client.post("/graphs/validate", json={"graph": graph}).json()
    assert body["ok"] is False
    assert {(i["kind"], i["node_id"]) for i in body["issues"]} == {
        ("value_bigger_than_max", "a"), ("required_input_missing", "a"),
        ("unknown_node_type", "b")}


def test_node_schemas_are_served(client):
    schemas = client.get("/nodes").json()
    limited = schemas["test.Limited"]
    assert [i["name"] for i in limited["inputs"]] == ["value", "mode", "text"]
    assert limited["inputs"][0]["min"] == 0 and limited["inputs"][1]["choices"] == ["a", "b"]
    assert client.get("/nodes/MyAdd").json()["api"] == "comfy"


def test_image_outputs_become_fetchable_files(client):
    graph = {"nodes": {"img": {"type": "image.Solid", "inputs": {"width": 8, "height": 4,
                                                                  "color": "#ff0000"}}},
             "outputs": {"image": "${img.image}"}}
    body = client.post("/runs", json={"graph": graph, "wait": True}).json()
    image = body["outputs"]["image"]
    assert (image["width"], image["height"]) == (8, 4)
    fetched = client.get(image["url"])
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    from io import BytesIO

    from PIL import Image
    picture = Image.open(BytesIO(fetched.content)).convert("RGB")
    assert picture.size == (8, 4) and picture.getpixel((3, 2)) == (255, 0, 0)


def test_reading_a_run_never_writes_its_pictures_again(client):
    graph = {"nodes": {"solid": {"type": "image.Solid",
                                 "inputs": {"width": 8, "height": 8, "color": "red"}}},
             "outputs": {"image": "${solid.image}"}}
    run = client.post("/runs", json={"graph": graph, "wait": True}).json()
    url = run["outputs"]["image"]["url"]
    root = client.app.state.homepilot.files.root
    stored = sorted(p.name for p in root.iterdir())
    views = [client.get(f"/runs/{run['run_id']}").json() for _ in range(3)]
    listed = [r for r in client.get("/runs").json() if r["run_id"] == run["run_id"]]
    assert {v["outputs"]["image"]["url"] for v in views + listed} == {url}
    assert sorted(p.name for p in root.iterdir()) == stored
