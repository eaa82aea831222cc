"""The editor's login page: the API key, asked once, becomes an HttpOnly session cookie.

Without ``HOMEPILOT_API_KEY`` there is nothing to log in to and the page sends the
browser straight to the editor.
"""

from __future__ import annotations

import asyncio
import hmac
import html

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from server.auth import SESSION_COOKIE, SESSION_SECONDS, new_session
from server.deps import State

router = APIRouter(include_in_schema=False)
PAGE = "/editor/login"
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")


def _page(next_url: str, error: str = "") -> str:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>HomePilot editor</title>
<style>body{{font:16px system-ui,sans-serif;background:#171718;color:#eee;display:grid;
place-items:center;height:100vh;margin:0}}form{{background:#222;padding:2em;border-radius:8px;
min-width:18em}}input{{width:100%;box-sizing:border-box;padding:.5em;margin:.5em 0 1em;
font:inherit}}button{{padding:.5em 1.5em;font:inherit}}.error{{color:#f77}}</style></head>
<body><form method="post" action="{PAGE}"><h1>HomePilot</h1>
<label for="key">This server's API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" autofocus required>
<input type="hidden" name="next" value="{html.escape(next_url)}">{message}
<button type="submit">Open the editor</button></form></body></html>"""


def _safe_next(next_url: str) -> str:
    """Only back into the editor: never an open redirect to another site."""
    if next_url.startswith("/editor/") and not next_url.startswith("//"):
        return next_url
    return "/editor/"


@router.get(PAGE, response_model=None)
def login_page(state: State, next: str = "/editor/") -> Response:  # noqa: A002
    if not state.settings.api_key:
        return RedirectResponse(_safe_next(next), status_code=303)
    return HTMLResponse(_page(_safe_next(next)),
                        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"})


@router.post(PAGE, response_model=None)
async def log_in(state: State, key: str = Form("", max_length=4096),
                 next: str = Form("/editor/")) -> Response:  # noqa: A002
    target = _safe_next(next)
    expected = state.settings.api_key
    if not expected:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(key.encode(), expected.encode()):
        await asyncio.sleep(0.5)  # slows guessing from a script
        return HTMLResponse(_page(target, "That is not this server's API key."),
                            status_code=401, headers={"Content-Security-Policy": _CSP,
                                                      "Cache-Control": "no-store"})
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, new_session(expected), max_age=SESSION_SECONDS,
                        httponly=True, samesite="strict", path="/")
    return response
