"""ComfyUI's HTTP API: the shapes of COMFY-COMPAT.md, on both executors."""

from __future__ import annotations

import json
import uuid

import pytest

ADD_TOTAL = {"1": {"class_type": "MyAdd", "inputs": {"a": 10, "b": 20}},
             "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}


def wait_history(client, prompt_id: str, socket) -> dict:
    """Read ComfyUI frames until the prompt is done, as ComfyUI's example scripts do:
    binary frames (latent previews) are counted and skipped."""
    frames: list[dict] = []
    previews = 0
    while True:
        message = socket.receive()
        if message.get("bytes") is not None:
            previews += 1
            continue
        frame = json.loads(message["text"])
        frames.append(frame)
        if frame["type"] in ("execution_error", "execution_interrupted"):
            break
        if frame["type"] == "executing" and frame["data"]["node"] is None \
                and frame["data"]["prompt_id"] == prompt_id:
            break
    return {"frames": frames, "previews": previews,
            "history": client.get(f"/history/{prompt_id}").json()}


def test_a_prompt_runs_and_its_history_holds_the_ui_outputs(client):
    client_id = uuid.uuid4().hex
    with client.websocket_connect(f"/ws?clientId={client_id}") as socket:
        hello = json.loads(socket.receive_text())
        assert hello["type"] == "status" and hello["data"]["sid"] == client_id
        accepted = client.post("/prompt", json={"prompt": ADD_TOTAL, "client_id": client_id})
        assert accepted.status_code == 200
        body = accepted.json()
        assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
        seen = wait_history(client, body["prompt_id"], socket)
    kinds = [f["type"] for f in seen["frames"] if f["type"] != "status"]
    assert kinds[:2] == ["execution_start", "execution_cached"]
    assert {"type": "executed", "data": {"node": "2", "display_node": "2",
                                         "output": {"text": ["TOTAL=30"], "number": [30]},
                                         "prompt_id": body["prompt_id"]}} in seen["frames"]
    entry = seen["history"][body["prompt_id"]]
    assert entry["outputs"] == {"2": {"text": ["TOTAL=30"], "number": [30]}}
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached",
                                                          "execution_success"]
    assert entry["prompt"][1] == body["prompt_id"] and entry["prompt"][4] == ["2"]


def test_an_identical_resubmission_is_all_cached(client):
    first = client.post("/prompt", json={"prompt": ADD_TOTAL}).json()["prompt_id"]
    client.app.state.homepilot.runs.get(first).handle.result(60)
    client_id = uuid.uuid4().hex
    with client.websocket_connect(f"/ws?clientId={client_id}") as socket:
        socket.receive_text()
        second = client.post("/prompt", json={"prompt": ADD_TOTAL,
                                              "client_id": client_id}).json()["prompt_id"]
        seen = wait_history(client, second, socket)
    entry = seen["history"][second]
    cached = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_cached")
    assert cached["nodes"] == ["2"]
    assert entry["outputs"] == {"2": {"text": ["TOTAL=30"], "number": [30]}}
    # Like ComfyUI, the cached output node shows its output again, and nothing runs.
    frames = [f for f in seen["frames"] if f["type"] not in ("status", "progress_state")]
    assert [f["type"] for f in frames] == ["execution_start", "execution_cached", "executed",
                                          "executing"]
    assert frames[2]["data"] == {"node": "2", "display_node": "2", "prompt_id": second,
                                 "output": {"text": ["TOTAL=30"], "number": [30]}}


def test_a_runtime_failure_is_an_execution_error(client):
    prompt = {"1": {"class_type": "MyFail", "inputs": {"value": 7}},
              "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}
    pid = client.post("/prompt", json={"prompt": prompt}).json()["prompt_id"]
    client.app.state.homepilot.runs.get(pid).handle.result(60)
    status = client.get(f"/history/{pid}").json()[pid]["status"]
    assert status["status_str"] == "error" and status["completed"] is False
    error = next(m[1] for m in status["messages"] if m[0] == "execution_error")
    assert (error["node_id"], error["node_type"]) == ("1", "MyFail")
    assert error["exception_type"] == "ValueError"
    assert error["exception_message"] == "MyFail refuses 7"


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_validation_failures_have_comfyui_shapes(client):
    assert client.post("/prompt", json={}).json()["error"]["type"] == "no_prompt"
    unknown = client.post("/prompt", json={"prompt": {"1": {"class_type": "Nope", "inputs": {}}}})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {"type": "invalid_prompt", "message": "Cannot execute "
                                       "because node Nope does not exist.",
                                       "details": "Node ID '#1'", "extra_info": {}}
    limited = {"1": {"class_type": "MyLimited", "inputs": {"value": 11}},
               "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}
    answer = client.post("/prompt", json={"prompt": limited})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    (error,) = body["node_errors"]["1"]["errors"]
    assert error["type"] == "custom_validation_failed"
    assert error["details"] == "value - value must be at most 10"
    assert error["extra_info"] == {"input_name": "value"}
    assert body["node_errors"]["1"]["class_type"] == "MyLimited"


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_we_name_what_comfyui_misreports(client):
    dangling = {"2": {"class_type": "MyTotal", "inputs": {"value": ["9", 0]}}}
    errors = client.post("/prompt", json={"prompt": dangling}).json()["node_errors"]["2"]["errors"]
    assert errors[0]["type"] == "missing_node" and "'9'" in errors[0]["message"]
    cycle = {"1": {"class_type": "MyAdd", "inputs": {"a": ["2", 1], "b": 1}},
             "2": {"class_type": "MyTotal", "inputs": {"value": ["1", 0]}}}
    node_errors = client.post("/prompt", json={"prompt": cycle}).json()["node_errors"]
    assert set(node_errors) == {"1", "2"}
    assert node_errors["1"]["errors"][0]["type"] == "dependency_cycle"
    malformed = client.post("/prompt", content=b"{not json",
                            headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["error"]["message"]
    assert client.get("/history/unknown").json() == {}
    assert client.post("/prompt", json={"prompt": "text"}).status_code == 400


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_json_python_cannot_read_is_a_400_not_a_500(client):
    """json.loads refuses an integer of over 4300 digits (ValueError) and recurses out on
    deep nesting (RecursionError): both used to escape as 500s."""
    json_type = {"content-type": "application/json"}
    for body in (b'{"prompt": ' + b"1" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000):
        refused = client.post("/prompt", content=body, headers=json_type)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["type"] == "invalid_prompt"
        interrupt = client.post("/interrupt", content=body, headers=json_type)
        assert interrupt.status_code == 400 and interrupt.json()["code"] == "invalid_json"
    assert client.get("/queue").json()["queue_running"] == []


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_a_prompt_with_fields_of_the_wrong_type_is_refused_and_not_kept(client):
    """extra_data as a list used to be accepted, and every GET /history after it was a
    500; a client_id that is not a string reached the socket hub."""
    for field, value in (("extra_data", [1, 2]), ("extra_data", "x"), ("client_id", {"a": 1}),
                         ("client_id", 5), ("prompt_id", [1])):
        refused = client.post("/prompt", json={"prompt": ADD_TOTAL, field: value})
        assert refused.status_code == 400, (field, value)
        assert refused.json()["error"]["message"].startswith(f"'{field}'")
    assert client.get("/queue").json()["queue_running"] == []
    assert client.get("/history").status_code == 200 and client.get("/runs").json() == []
    assert client.post("/prompt", json={"prompt": ADD_TOTAL, "prompt_id": 7}).json()[
        "prompt_id"] == "7"  # as ComfyUI: any id, made a string


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_object_info_describes_nodes_like_comfyui(client):
    info = client.get("/object_info/MyFormat").json()["MyFormat"]
    assert info["input"]["required"]["number"] == ["INT", {"forceInput": True}]
    assert info["input"]["optional"]["case"] == [["keep", "upper"], {"default": "keep"}]
    assert info["input"]["hidden"] == {"unique_id": "UNIQUE_ID"}
    assert info["input_order"] == {"required": ["number", "prefix"], "optional": ["case"],
                                   "hidden": ["unique_id"]}
    assert info["output"] == ["STRING"] and info["output_name"] == ["STRING"]
    assert info["output_node"] is True and info["python_module"] == "custom_nodes.comfy_classic"
    everything = client.get("/object_info").json()
    assert {"MyAdd", "V3Multiply", "test.Inc"} <= set(everything)
    assert everything["V3Multiply"]["output_name"] == ["product"]
    assert client.get("/object_info/Nope").status_code == 404


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_interrupt_stops_a_running_prompt_and_the_queue_shows_it(client):
    prompt = {"1": {"class_type": "test.Wait", "inputs": {"seconds": 30}},
              "2": {"class_type": "V3Label", "inputs": {"value": ["1", 0], "prefix": ""}}}
    pid = client.post("/prompt", json={"prompt": prompt}).json()["prompt_id"]
    queue = client.get("/queue").json()
    assert [item[1] for item in queue["queue_running"]] == [pid] and queue["queue_pending"] == []
    assert client.post("/interrupt", json={}).status_code == 200
    result = client.app.state.homepilot.runs.get(pid).handle.result(30)
    assert result.status == "cancelled"
    messages = client.get(f"/history/{pid}").json()[pid]["status"]["messages"]
    assert messages[-1][0] == "execution_interrupted"
    assert client.get("/queue").json()["queue_running"] == []


@pytest.mark.parametrize("executor", ["local"], indirect=True)
def test_pack_http_routes_are_served_on_the_same_port(client):
    hello = client.get("/my_pack/hello", params={"name": "Ann"})
    assert hello.status_code == 200
    assert hello.json()["hello"] == "Ann" and "MyAdd" in hello.json()["nodes"]
    echo = client.post("/my_pack/echo/t1", json={"x": [1, 2]})
    assert echo.status_code == 201 and echo.json() == {"tag": "t1", "body": {"x": [1, 2]}}
