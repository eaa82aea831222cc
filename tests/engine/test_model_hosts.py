"""Model hosts: residency, eviction under a budget, recreation after death, GPU placement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from engine.models.host import ModelHostError
from engine.models.local import LocalModels

LLM, EMBEDDER = "smollm2-135m-instruct", "all-minilm-l6-v2"


def test_local_hosts_evict_the_least_recently_used_under_the_budget(model_store):
    llm_bytes = model_store.get(LLM).resources.memory
    models = LocalModels(model_store, budget_bytes=llm_bytes + 1)  # room for one at a time
    try:
        first = models.get("llm")
        assert first.call("chat", [{"role": "user", "content": "Hi"}], max_tokens=2)["text"]
        assert models.get("llm").host is first.host  # resident: the same host again
        models.get("embedding").call("embed", ["hello"])
        assert models.resident() == [EMBEDDER] and models.evicted == [LLM]
    finally:
        models.close()


@pytest.fixture(scope="session")
def ray_models(ray_session, model_store):
    """A client of the shared manager (the one RayExecutor uses). The manager is a named
    actor, which Ray collects once no handle is left: the client keeps one."""
    from engine.models.ray import RayModels
    from engine.settings import get_settings

    return RayModels.start(model_store, get_settings().model_memory_budget)


def test_ray_hosts_evict_under_a_small_budget(ray_models, model_store):
    import ray

    budget = model_store.get(LLM).resources.memory + 1
    models = ray_models.start(model_store, budget, name="homepilot:models:evict-test",
                              prefix="evict-test/")
    try:
        models.get("llm").call("chat", [{"role": "user", "content": "Hi"}], max_tokens=2)
        models.get("embedding").call("embed", ["hello"])
        facts = models.facts()
        assert facts["resident"] == [EMBEDDER] and facts["evicted"] == [LLM]
        with pytest.raises(ValueError):
            ray.get_actor(f"evict-test/{LLM}")
    finally:
        for model_id in (LLM, EMBEDDER):
            models.unload(model_id)
        ray.kill(models.manager)


def test_a_killed_host_is_recreated_and_an_idempotent_call_retried(ray_models):
    import ray

    models = ray_models
    handle = models.get("embedding")
    expected = handle.call("embed", ["resident"])
    created = models.facts()["created"]
    ray.kill(ray.get_actor(f"model:{EMBEDDER}"))
    assert models.get("embedding").call("embed", ["resident"]) == expected
    assert models.facts()["created"] == created + 1


def test_callers_that_saw_one_host_die_restart_it_once(ray_models):
    """Two nodes whose calls failed on the same dead host both ask for a new one: the
    second must not kill the host the first just started (it did, and the first node's
    retry then failed with ActorDiedError)."""
    import ray

    models = ray_models
    first, second = models.get("embedding"), models.get("embedding")
    expected = first.call("embed", ["twice"])
    ray.kill(ray.get_actor(f"model:{EMBEDDER}"))
    created = models.facts()["created"]
    assert first.call("embed", ["twice"]) == expected  # restarts the host, retries
    assert second.call("embed", ["twice"]) == expected  # its stale actor: no second kill
    assert first.call("embed", ["twice"]) == expected  # the first's host is still alive
    assert models.facts()["created"] == created + 1


def test_a_non_idempotent_call_on_a_dead_host_fails_clearly_then_recovers(ray_models):
    import ray

    models = ray_models
    handle = models.get("embedding", idempotent=False)
    handle.call("embed", ["warm"])
    ray.kill(ray.get_actor(f"model:{EMBEDDER}"))
    with pytest.raises(ModelHostError, match="died while serving"):
        handle.call("embed", ["lost"])
    assert len(handle.call("embed", ["next"])[0]) == 384  # the new host serves


def test_hosts_hold_no_cpu_and_no_gpu_on_a_cluster_without_gpus(ray_models):
    models = ray_models
    models.get("llm")
    info = next(h for h in models.status() if h["id"] == LLM)
    assert info["num_gpus"] == 0 and info["device"] == "cpu" and info["gpu_ids"] == []


GPU_PROBE = textwrap.dedent("""
    import json, ray
    from engine.models.ray import RayModels
    from engine.models.store import ModelStore
    from engine.settings import get_settings
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    models = RayModels.start(ModelStore(get_settings().models_dir), 2**40)
    handle = models.get("llm")
    reply = handle.call("chat", [{"role": "user", "content": "Hi"}], max_tokens=2)
    print(json.dumps({"status": models.status(), "free": ray.available_resources(),
                      "reply": reply["text"]}))
    ray.shutdown()
""")


def test_a_host_is_placed_on_a_gpu_when_the_cluster_declares_one(model_store, tmp_path):
    # Its own Ray, with one logical GPU: the session's Ray has none.
    env = {**os.environ, "RAY_ADDRESS": ""}
    done = subprocess.run([sys.executable, "-c", GPU_PROBE], capture_output=True, text=True,
                          timeout=240, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    (info,) = report["status"]
    assert info["id"] == LLM and info["num_gpus"] == 0.25 and info["gpu_ids"] == ["0"]
    assert report["free"]["GPU"] == 0.75 and report["reply"]
