"""FastAPI dependencies as ``Annotated`` aliases: routers never reach for globals."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from server.state import AppState


def _state(connection: HTTPConnection) -> AppState:
    return connection.app.state.homepilot


State = Annotated[AppState, Depends(_state)]
