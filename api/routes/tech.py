"""The technician's phone page: /tech, a small static page (api/tech) that signs in and works on the API.

Plain HTML, CSS and JavaScript modules, no build step and nothing from other hosts, so the API's
Content-Security-Policy (same-origin scripts and styles, nothing inline) holds for it as it is. The page keeps its
token in sessionStorage and sends it as a bearer token; these routes themselves are open (the page is no secret).

`install(app)` adds GET /tech (and /tech/) and mounts the page's files at /tech/static.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

PAGE_DIR = Path(__file__).resolve().parent.parent / "tech"
STATIC_PREFIX = "/tech/static"

router = APIRouter(tags=["technician page"], include_in_schema=False)

# Revalidate every time (the files carry ETags, so an unchanged page costs a 304): a phone should not keep running
# yesterday's script against today's API.
_REVALIDATE = {"Cache-Control": "no-cache"}


class _PageFiles(StaticFiles):
    """The page's files, revalidated on every load like the page itself."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.setdefault("Cache-Control", _REVALIDATE["Cache-Control"])
        return response


@router.get("/tech")
@router.get("/tech/")
def tech_page() -> FileResponse:
    """The technician's page: sign in, my open work orders with their deadlines, acknowledge, on site, resolve."""
    return FileResponse(PAGE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_REVALIDATE)


def install(app: FastAPI) -> None:
    """Serve the technician page from `app`: /tech and its files under /tech/static."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, _PageFiles(directory=PAGE_DIR), name="tech-static")
