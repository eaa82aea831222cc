"""Error responses: ``{ok: false, code, message}`` with the right status, never a bare 500."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from engine.errors import GraphLoadError, GraphValidationError

log = logging.getLogger("homepilot.server")


class ApiError(Exception):
    """Raised by routers and services for a client-visible error."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class ErrorBody(BaseModel):
    """Every refusal: ``{ok: false, code, message}``. Some codes add fields: 422
    ``invalid_request`` its ``detail``, ``invalid_graph`` its ``issues``, ``unknown_feature``
    its ``valid_features``."""

    model_config = ConfigDict(extra="allow")
    ok: Literal[False]
    code: str
    message: str


# Declared on every route (app.py), so the OpenAPI says what a refusal looks like. It
# stands for FastAPI's 422 too: our handler below answers 422 in this shape.
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Refused (bad input, or nothing there); "
                                               "nothing was changed"}}


def body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "code": code, "message": message, **extra}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc.code, exc.message, **exc.extra), status_code=exc.status)

    @app.exception_handler(GraphValidationError)
    async def invalid_graph(_: Request, exc: GraphValidationError) -> JSONResponse:
        return JSONResponse(body("invalid_graph", str(exc),
                                 issues=[i.model_dump() for i in exc.issues]), status_code=400)

    @app.exception_handler(GraphLoadError)
    async def unreadable_graph(_: Request, exc: GraphLoadError) -> JSONResponse:
        return JSONResponse(body("invalid_graph", str(exc)), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
        return JSONResponse({"ok": False, "code": "invalid_request",
                             "message": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                  for e in errors), "detail": errors},
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(body("internal_error", "Internal server error."), status_code=500)
