"""The interactive API docs at /docs (Swagger UI), served from files shipped with facmon: nothing from other hosts,
so the page works on a closed network.

Swagger UI's script, styles and icon come from the fastapi-offline package (its `static` folder, a copy of
swagger-ui-dist); the script that starts it is ours (api/docs/swagger-init.js), so the page has no inline script and
its Content-Security-Policy (api.security_headers.DOCS_CSP) allows this origin only. Only the files the page uses are
served. There is no ReDoc page: its bundle draws its logo from its makers' server.

`install(app)` adds GET /docs and mounts the files at /docs/static; the app is built with `docs_url=None` and
`redoc_url=None` so FastAPI's own pages (which load from a CDN) are not there.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from api.security_headers import DOCS_CSP

PAGE_URL = "/docs"
STATIC_PREFIX = "/docs/static"
INIT_DIR = Path(__file__).resolve().parent.parent / "docs"
# Swagger UI's files, from the fastapi-offline package, and the script that starts it.
ASSETS_PACKAGE = ("fastapi_offline", "static")
SERVED = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "swagger-init.js"})

router = APIRouter(include_in_schema=False)


class _DocsFiles(StaticFiles):
    """The files the page uses and no others, revalidated on every load (an upgrade brings a new Swagger UI)."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in SERVED:
            return "", None
        return super().lookup_path(path)

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def docs_page(title: str, root_path: str, openapi_url: str) -> str:
    static = escape(f"{root_path}{STATIC_PREFIX}")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - Swagger UI</title>
<link rel="icon" type="image/png" href="{static}/favicon.png">
<link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(f"{root_path}{openapi_url}")}"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-init.js"></script>
</body>
</html>
"""


@router.get(PAGE_URL)
def swagger_ui(request: Request) -> HTMLResponse:
    app = request.app
    page = docs_page(app.title, request.scope.get("root_path", ""), app.openapi_url or "/openapi.json")
    return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve the API docs from `app`: /docs and its files under /docs/static."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, _DocsFiles(directory=INIT_DIR, packages=[ASSETS_PACKAGE]), name="docs-static")
