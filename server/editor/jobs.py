"""``/api/jobs``: the queue, history and generated-assets panels of the editor.

The frontend validates the list with zod and drops *all* of it when one item is off, so
the shapes here follow COMFY-FRONTEND.md exactly: ``create_time`` always a number,
``nodeId``/``mediaType`` in a preview, ``execution_error`` only with string node fields.
Runs start as soon as they are accepted, so no job is ever ``pending``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from server.deps import State
from server.editor.boot import API
from server.errors import ApiError
from server.services.runs import RunRecord
from server.state import AppState

router = APIRouter(tags=["editor"])
JobStatus = Literal["pending", "in_progress", "completed", "failed", "cancelled"]
_STATUS: dict[str, JobStatus] = {"queued": "in_progress", "running": "in_progress",
                                 "success": "completed", "failed": "failed",
                                 "cancelled": "cancelled"}
_MEDIA = ("images", "video", "audio", "gifs", "3d")


class PreviewOutput(BaseModel):
    filename: str
    subfolder: str = ""
    type: str = "output"
    nodeId: str  # noqa: N815 (the frontend's field name)
    mediaType: str  # noqa: N815


class JobError(BaseModel):
    node_id: str
    node_type: str
    exception_message: str
    exception_type: str
    traceback: list[str] = []


class Job(BaseModel):
    id: str
    status: JobStatus
    create_time: int
    priority: int
    execution_start_time: int | None = None
    execution_end_time: int | None = None
    outputs_count: int = 0
    previewable_outputs_count: int = 0
    preview_output: PreviewOutput | None = None
    execution_error: JobError | None = None
    workflow_id: str | None = None


class JobDetail(Job):
    outputs: dict[str, Any] = {}
    execution_status: dict[str, Any] = {}
    workflow: dict[str, Any] = {}


class Pagination(BaseModel):
    offset: int
    limit: int
    total: int
    has_more: bool


class JobList(BaseModel):
    jobs: list[Job]
    pagination: Pagination


class CancelMany(BaseModel):
    job_ids: list[str] = Field(default_factory=list, max_length=1000)


class Cancelled(BaseModel):
    cancelled: bool


def _ui(record: RunRecord) -> dict[str, dict[str, Any]]:
    """What each node showed (the ``executed`` messages), finished run or not."""
    shown: dict[str, dict[str, Any]] = {}
    for event in list(record.handle.events):
        if event.type == "node_finished" and event.data.get("ui"):
            shown[str(event.node_id)] = event.data["ui"]
    return shown


def _media(ui: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(node, kind, item) for node, shown in ui.items() for kind in _MEDIA
            for item in shown.get(kind) or [] if isinstance(item, dict) and "filename" in item]


def job_of(record: RunRecord) -> dict[str, Any]:
    handle = record.handle
    events = list(handle.events)
    ui = _ui(record)
    media = _media(ui)
    started = next((e.ts for e in events if e.type == "run_started"), None)
    ended = next((e.ts for e in events if e.type in ("run_finished", "run_failed",
                                                     "run_cancelled")), None)
    status = _STATUS.get(handle.status, "in_progress")
    if status == "in_progress" and ended is not None:  # the terminal event is out
        status = {"run_finished": "completed", "run_failed": "failed"}.get(
            events[-1].type, "cancelled")
    job: dict[str, Any] = {
        "id": record.run_id, "status": status, "create_time": int(record.submitted * 1000),
        "priority": record.number,
        "execution_start_time": int(started * 1000) if started else None,
        "execution_end_time": int(ended * 1000) if ended else None,
        "outputs_count": sum(len(v) for shown in ui.values() for v in shown.values()
                             if isinstance(v, list)),
        "previewable_outputs_count": len(media)}
    if media:
        node, kind, item = media[0]
        job["preview_output"] = {"filename": str(item["filename"]),
                                 "subfolder": str(item.get("subfolder", "")),
                                 "type": str(item.get("type", "output")), "nodeId": node,
                                 "mediaType": kind}
    failure = next((e for e in reversed(events) if e.type == "run_failed"), None)
    error = (failure.data.get("error") or {}) if failure else {}
    if error.get("node_id") is not None:
        job["execution_error"] = {
            "node_id": str(error["node_id"]), "node_type": str(error.get("node_type") or ""),
            "exception_message": str(error.get("message", "")),
            "exception_type": str(error.get("error_type", "")),
            "traceback": [str(line) for line in error.get("traceback") or []]}
    workflow = (record.extra_data.get("extra_pnginfo") or {}).get("workflow") \
        if isinstance(record.extra_data.get("extra_pnginfo"), dict) else None
    if isinstance(workflow, dict) and isinstance(workflow.get("id"), str):
        job["workflow_id"] = workflow["id"]
    return job


def _records(state: AppState) -> list[RunRecord]:
    return [r for r in state.runs.records() if r.prompt is not None]


@router.get(API + "/jobs", response_model=JobList, response_model_exclude_none=True)
def list_jobs(state: State,
              status: str | None = Query(None, description="comma-separated job statuses"),
              limit: int = Query(200, ge=1, le=10_000), offset: int = Query(0, ge=0),
              sort_order: Literal["asc", "desc"] = "desc") -> dict[str, Any]:
    wanted = {s.strip() for s in status.split(",") if s.strip()} if status else None
    jobs = [job_of(r) for r in _records(state)]
    if wanted is not None:
        jobs = [j for j in jobs if j["status"] in wanted]
    jobs.sort(key=lambda j: (j["create_time"], j["priority"]), reverse=sort_order == "desc")
    page = jobs[offset:offset + limit]
    return {"jobs": page, "pagination": {"offset": offset, "limit": limit, "total": len(jobs),
                                         "has_more": offset + len(page) < len(jobs)}}


def _record(state: AppState, job_id: str) -> RunRecord:
    record = state.runs.get(job_id)
    if record is None or record.prompt is None:
        raise ApiError(404, "job_not_found", f"there is no job {job_id}")
    return record


@router.get(API + "/jobs/{job_id}", response_model=JobDetail, response_model_exclude_none=True)
def job_detail(job_id: str, state: State) -> dict[str, Any]:
    from server.services import comfy

    record = _record(state, job_id)
    detail = job_of(record)
    detail["outputs"] = _ui(record)
    detail["execution_status"] = comfy.history_entry(record)["status"] if record.settled() \
        else {"status_str": "running", "completed": False, "messages": []}
    detail["workflow"] = {"prompt": record.prompt or {}, "extra_data": record.extra_data}
    return detail


@router.post(API + "/jobs/{job_id}/cancel", response_model=Cancelled)
def cancel_job(job_id: str, state: State) -> Cancelled:
    record = _record(state, job_id)
    if record.handle.done():
        return Cancelled(cancelled=False)
    record.handle.cancel()
    return Cancelled(cancelled=True)


@router.post(API + "/jobs/cancel", response_model=Cancelled)
def cancel_jobs(body: CancelMany, state: State) -> Cancelled:
    cancelled = False
    for job_id in body.job_ids:
        record = state.runs.get(job_id)
        if record is not None and record.prompt is not None and not record.handle.done():
            record.handle.cancel()
            cancelled = True
    return Cancelled(cancelled=cancelled)
