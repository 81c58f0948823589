"""Every page a person opens works on a closed network: the API docs (/docs), the technician page (/tech) and the
page of a one-tap acknowledge link load nothing from other hosts.

The browser test serves the real app in uvicorn on a loopback port and opens the pages in Debian's Chromium, headless,
with every request to another host aborted and recorded. It fails on any such request, any failed request or error
answer, any console error and any Content-Security-Policy violation. The plain test reads every HTML, JavaScript and
CSS file the app serves and finds no src or href naming another host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright
from sqlalchemy import Engine
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from api import create_app
from facmon.notifier.tokens import issue
from tests.api.accounts import bearer
from tests.api.test_tech_page import CHROMIUM, DEMO, OTHER, TECHNICIAN, launch, seed, serve, sign_in

KEY = b"9f2c4e71b8a05d3e6c17f4a29b80d5e3c6a1f7042be95d8c03a6f1e7b42d9c58"
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
# A src or href that names a host (http://, https:// or protocol-relative //): an HTML attribute or a script's property
# (src="...", .src = "...", {src: "..."}), setAttribute("src", "..."), and CSS url(...) and @import.
OTHER_HOST = re.compile(
    r"""(?:\b(?:src|href)["']?\s*[=:]\s*|setAttribute\(\s*["'](?:src|href)["']\s*,\s*|url\(\s*|@import\s+)"""
    r"""["'`]?\s*((?:https?:)?//[^\s"'`)<>]+)""",
    re.IGNORECASE,
)
# Reported to the test from each page, across navigations: what the Content-Security-Policy refused.
REPORT_CSP = (
    "document.addEventListener('securitypolicyviolation',"
    " (e) => window.reportCspViolation(location.pathname + ': ' + e.violatedDirective + ' ' + e.blockedURI));"
)


def make_app(engine: Engine) -> FastAPI:
    return create_app(sites=[DEMO, OTHER], engine=engine, ack_secret=KEY)


@dataclass
class Watch:
    """What the pages did that a closed network or the page's policy would not allow."""

    other_hosts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)

    def block_other_hosts(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.other_hosts.append(url)
            route.abort("blockedbyclient")

    def request_failed(self, request: Request) -> None:
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def assert_clean(self) -> None:
        assert self.other_hosts == [], f"requests to other hosts: {self.other_hosts}"
        assert self.failed == [], f"failed requests: {self.failed}"
        assert self.errors == [], f"console errors: {self.errors}"
        assert self.csp == [], f"Content-Security-Policy violations: {self.csp}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: make test installs it (apt-get install chromium)")
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def closed_network(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    """A page whose requests to any host but this machine's loopback are aborted, with everything it did wrong."""
    watch = Watch()
    context = browser.new_context()
    context.route("**/*", watch.block_other_hosts)
    context.expose_function("reportCspViolation", lambda text: watch.csp.append(text))
    context.add_init_script(REPORT_CSP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("requestfailed", watch.request_failed)
    page.on("response", lambda r: watch.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda message: watch.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))
    yield page, watch
    context.close()


def try_it_out(page: Page, path: str, expected: str) -> None:
    """Open an operation in Swagger UI, run it, and see its answer in the page."""
    operation = page.locator(".opblock").filter(has=page.locator(f".opblock-summary-path[data-path='{path}']"))
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table .response")
    expect(answer.locator(".response-col_status")).to_have_text("200")
    expect(answer.locator(".response-col_description")).to_contain_text(expected)


def test_every_page_works_without_other_hosts(engine: Engine, closed_network: tuple[Page, Watch]) -> None:
    now = datetime.now(UTC)
    seeded = seed(engine, now)
    token = issue(KEY, seeded.door, TECHNICIAN, now=now)
    page, watch = closed_network
    with serve(make_app(engine)) as base:
        # The API docs: Swagger UI draws the operations from /openapi.json.
        page.goto(f"{base}/docs")
        expect(page.get_by_role("heading", level=1)).to_contain_text("facmon")
        expect(page.locator(".opblock-summary-path[data-path='/api/v1/health']")).to_be_visible()
        try_it_out(page, "/api/v1/health", '"status"')

        # Authorize with a token: the operations that need one send it.
        page.get_by_role("button", name="Authorize").first.click()
        dialog = page.locator(".dialog-ux")
        dialog.get_by_label("Value").fill(bearer_token(engine))
        dialog.get_by_role("button", name="Apply credentials").click()
        expect(dialog).to_contain_text("Authorized")
        dialog.get_by_role("button", name="Close", exact=True).click()
        expect(dialog).to_be_hidden()
        with page.expect_request(f"{base}/api/v1/auth/me") as sent:
            try_it_out(page, "/api/v1/auth/me", '"username"')
        assert sent.value.headers["authorization"].startswith("Bearer ")

        # The technician's page: sign in, my work orders.
        page.goto(f"{base}/tech")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        sign_in(page)
        expect(page.get_by_role("heading", name="My open work orders")).to_be_visible()
        expect(page.locator("#list .card-link")).to_have_count(2)

        # An acknowledge link opened without `Sec-Fetch-User: ?1` (no person's tap, as in a link preview): the page
        # with the button. Chromium sends that header with a navigation the test starts, even past a changed request,
        # so this one request goes to the server from the test without it and the browser shows the server's answer.
        link = f"{base}/api/v1/ack/{token}"
        page.route(link, lambda route: route.fulfill(response=route.fetch(headers=without_tap(route.request))))
        page.goto(link)
        page.unroute(link)
        expect(page.get_by_role("heading", name=f"Work order #{seeded.door}")).to_be_visible()
        page.get_by_role("button", name="Acknowledge").click()
        expect(page.get_by_role("heading", name="Acknowledged", exact=True)).to_be_visible()
        # The same link tapped again (the browser's own request): said so, nothing changes.
        page.goto(link)
        expect(page.get_by_role("heading", name="Already acknowledged")).to_be_visible()
    watch.assert_clean()


def bearer_token(engine: Engine) -> str:
    return bearer(engine)["Authorization"].removeprefix("Bearer ")


def without_tap(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() != "sec-fetch-user"}


# --- what the app serves names no other host --------------------------------------------------------------------------


def served_files(app: FastAPI) -> list[str]:
    """The URL of every file under the app's static mounts (the pages' scripts, styles and images)."""
    urls = []
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            for directory in route.app.all_directories:
                urls += [f"{route.path}/{p.name}" for p in sorted(Path(directory).iterdir()) if p.is_file()]
    return urls


def test_no_served_page_script_or_style_names_another_host(engine: Engine) -> None:
    now = datetime.now(UTC)
    seeded = seed(engine, now)
    app = make_app(engine)
    pages = ["/docs", "/tech", f"/api/v1/ack/{issue(KEY, seeded.door, TECHNICIAN, now=now)}"]
    checked: dict[str, str] = {}
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        for url in [*pages, *served_files(app)]:
            response = client.get(url, headers={"Accept": "text/html"})
            if url in pages:
                assert response.status_code == 200, url
            if response.status_code == 404:  # a file in a mounted folder that the mount does not serve
                continue
            assert response.status_code == 200, url
            kind = response.headers["content-type"].split(";")[0]
            if kind in ("text/html", "text/javascript", "application/javascript", "text/css"):
                checked[url] = response.text
    # Every page, and the scripts and styles of both: Swagger UI's and ours, the technician page's.
    assert set(pages) <= set(checked)
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css", "/docs/static/swagger-init.js"} <= set(
        checked
    )
    assert {"/tech/static/app.js", "/tech/static/app.css"} <= set(checked)
    found = {url: OTHER_HOST.findall(text) for url, text in checked.items()}
    assert {url: hosts for url, hosts in found.items() if hosts} == {}


def test_the_pattern_finds_other_hosts() -> None:
    """The check above would see a link to another host in each form it can take."""
    samples = [
        '<script src="https://cdn.example/x.js"></script>',
        "<link rel=stylesheet href=http://cdn.example/x.css>",
        '<img src="//cdn.example/x.png">',
        'e.createElement("img",{src:"https://cdn.example/logo.svg"})',
        'a.setAttribute("href", "https://cdn.example/")',
        "s.src = `https://cdn.example/x.js`",
        ".x{background:url(https://cdn.example/x.png)}",
        '@import "https://fonts.example/css";',
    ]
    assert [bool(OTHER_HOST.search(sample)) for sample in samples] == [True] * len(samples)
    assert not OTHER_HOST.search('<script src="/docs/static/swagger-ui-bundle.js"></script>')
    assert not OTHER_HOST.search(".x{background:url(data:image/svg+xml;base64,AAAA)}")
