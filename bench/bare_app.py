"""A bare FastAPI endpoint, the baseline of bench/api_latency.py (same server, no work)."""

from fastapi import FastAPI

app = FastAPI()
PAYLOAD = {"ok": True, "conversations": [{"conversation_id": f"c{i}", "last_role": "assistant",
                                          "last_content": "x" * 60,
                                          "updated_at": "2026-11-28 12:00:00"}
                                         for i in range(50)]}


@app.get("/bare")
def bare() -> dict:
    return PAYLOAD
