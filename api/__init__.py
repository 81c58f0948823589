"""api: the HTTP API under /api/v1 (FastAPI). Build it with `create_app(sites=..., engine=...)`."""

from api.app import create_app

__all__ = ["create_app"]
