"""The gallery in headless Chromium against a gateway that wants a key for reads
(READ_AUTH=api_key, prod's default): the page is served with its real CSP, the listing is
refused without a key and the page says what to do, and once the key is typed the page sends
it with its reads. The API is played by the browser's request interception (no stack needed)."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.api import Api
from chalicelib.catalog import MemoryCatalog
from chalicelib.gallery import gallery_reply
from chalicelib.links import FakeLinks
from chalicelib.presets import WEB
from chalicelib.probe import FakeProbe
from chalicelib.settings import Settings
from chalicelib.storage import MemoryObjectStore
from tests.e2e.test_gallery_browser import browser  # noqa: F401 - the Chromium fixture

ORIGIN = "https://api.example.test"
KEY = "k-123"
PROD = Settings.from_env({"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev", "STAGE": "prod"})


def test_the_gallery_asks_for_the_key_and_sends_it_with_its_reads(browser: Any) -> None:  # noqa: F811
    assert PROD.read_auth == "api_key"
    page_reply = gallery_reply(Api(PROD, WEB, MemoryCatalog(), MemoryObjectStore(), FakeLinks(), FakeProbe()))
    seen_keys: list[str | None] = []

    def gateway(route: Any) -> None:
        request = route.request
        if request.url.rstrip("/") == ORIGIN:
            route.fulfill(status=200, headers=page_reply.headers, body=page_reply.body)
            return
        key = request.headers.get("x-api-key")
        seen_keys.append(key)
        if key != KEY:  # API Gateway's own answer: no error body of ours
            route.fulfill(status=403, headers={"Content-Type": "application/json"}, body=json.dumps({"message": "Forbidden"}))
            return
        route.fulfill(status=200, headers={"Content-Type": "application/json"}, body=json.dumps({"items": [], "next": None}))

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None)
    try:
        page.route(f"{ORIGIN}/**", gateway)
        page.goto(ORIGIN + "/")
        notice = page.locator("#notice")
        notice.filter(has_text="API key").wait_for(timeout=10_000)
        page.fill("#apikey", KEY)
        page.locator("#empty").filter(has_text="No images yet").wait_for(timeout=10_000)
        assert notice.inner_text() == ""
    finally:
        page.close()
    assert seen_keys[0] is None and KEY in seen_keys
    assert errors == []
