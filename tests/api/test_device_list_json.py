"""The device list writes its JSON from the site files and the status tables without building the models: it must
read exactly as the models' own JSON would (the body, validated as DevicePagePublic and written again, is the same
bytes), for every state a device can be in and with each filter."""

from __future__ import annotations

import httpx
import pytest

from api.schemas import DevicePagePublic
from tests.api.test_api import client

__all__ = ["client"]


@pytest.mark.parametrize(
    "query", ["", "?site=north", "?state=fault&state=comm_lost", "?state=unknown", "?kind=gate", "?limit=2&offset=1"]
)
async def test_the_device_list_reads_as_the_models_json(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/api/v1/devices{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    page = DevicePagePublic.model_validate_json(response.content)
    assert response.content.decode() == page.model_dump_json()
    if query == "":
        states = {item.state for item in page.items}
        assert {"fault", "comm_lost", "unknown"} <= states, states
        assert any(item.installed_on is not None for item in page.items)
        assert any(item.comm_since is not None for item in page.items)
