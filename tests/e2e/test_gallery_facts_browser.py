"""The gallery's facts and navigation in headless Chromium, against the page the API serves
and recorded API answers (routed by Playwright, no stack to start): BlurHash placeholders,
near-duplicate links, the facts in the detail view, the detail view's own address (it
survives a reload), folders on tiles, the API key box only where writes need a key, no blank
band over the grid, the file name once. Screenshots go to test-artifacts/."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import blurhash as reference
import pytest
from PIL import Image

from chalicelib.facts import compute_facts
from chalicelib.gallery import gallery_csp, gallery_html
from chalicelib.settings import Settings
from tests.conftest import fixture_bytes
from tests.support.browser import ARTIFACTS, chromium

pytestmark = pytest.mark.slow

ORIGIN = "http://gallery.test"
FIRST, COPY, BAD = "a" * 32, "b" * 32, "c" * 32


def _thumbnail() -> tuple[bytes, dict[str, Any]]:
    photo = Image.open(io.BytesIO(fixture_bytes("orient_landscape_1.jpg"))).convert("RGB")
    facts = compute_facts(photo.resize((200, 150)))
    buffer = io.BytesIO()
    photo.resize((150, 150)).save(buffer, "JPEG")
    return buffer.getvalue(), {"placeholder": facts.placeholder.as_dict(), "phash": facts.phash}


THUMB, FACTS = _thumbnail()


def record(image_id: str, key: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image_id": image_id,
        "source_key": key,
        "status": "processed",
        "updated_at": f"2026-01-0{len(extra) + 1}T00:00:00Z",
    }
    base |= {"width": 600, "height": 450, "bytes": 139435, "format": "JPEG", "thumbnail_url": f"{ORIGIN}/t/{image_id}.jpg"}
    base |= {
        "renditions": [
            {"preset": "thumbnail", "url": f"{ORIGIN}/t/{image_id}.jpg", "format": "JPEG", "width": 150, "height": 150, "bytes": len(THUMB)}
        ]
    }
    return base | FACTS | extra


RECORDS = {
    FIRST: record(FIRST, "uploads/trip/2024/beach.jpg"),
    COPY: record(COPY, "uploads/home/beach.jpg", duplicate_of=FIRST),
    BAD: {"image_id": BAD, "source_key": "uploads/notes.jpg", "status": "rejected", "error_code": "not_an_image", "error": "not an image"},
}


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium()


def serve(settings: Settings, listing: list[dict[str, Any]]) -> Callable[[Any], None]:
    page = gallery_html(settings)

    def handle(route: Any) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/" or path.startswith("/#"):
            route.fulfill(status=200, body=page, headers={"Content-Type": "text/html", "Content-Security-Policy": gallery_csp(page)})
        elif path.startswith("/images?"):
            route.fulfill(status=200, json={"items": listing, "next": None})
        elif match := re.fullmatch(r"/images/([0-9a-f]{32})/similar", path):
            other = COPY if match[1] == FIRST else FIRST
            route.fulfill(status=200, json={"items": [{**RECORDS[other], "distance": 2}]} if match[1] != BAD else {"items": []})
        elif match := re.fullmatch(r"/images/([0-9a-f]{32})", path):
            route.fulfill(status=200, json=RECORDS[match[1]])
        elif path.startswith("/t/"):
            route.fulfill(status=200, body=THUMB, headers={"Content-Type": "image/jpeg"})
        else:
            route.fulfill(status=404, json={"error": {"code": "not_found", "message": path}})

    return handle


def open_gallery(
    chromium: Any, write_auth: str = "none", listing: list[dict[str, Any]] | None = None, read_auth: str = "none"
) -> tuple[Any, list[str]]:
    settings = dataclasses.replace(Settings.from_env(), write_auth=write_auth, read_auth=read_auth)
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.route(f"{ORIGIN}/**", serve(settings, list(RECORDS.values()) if listing is None else listing))
    page.goto(ORIGIN + "/")
    return page, errors


def test_tiles_show_placeholders_folders_and_near_duplicates(browser: Any) -> None:
    page, errors = open_gallery(browser)
    first = page.locator(f".tile[data-image-id='{FIRST}']")
    first.wait_for(timeout=10_000)
    # The folder is shown, so two beach.jpg in different folders are told apart.
    assert first.locator("[data-testid=folder]").inner_text() == "trip/2024/"
    assert page.locator(f".tile[data-image-id='{COPY}'] [data-testid=folder]").inner_text() == "home/"
    # The BlurHash is drawn behind the thumbnail, the same pixels the reference decoder gives.
    frame = first.locator(".frame")
    assert frame.get_attribute("data-placeholder") == FACTS["placeholder"]["dominant_color"]
    drawn = frame.locator("canvas[data-testid=blurhash]").evaluate(
        "c => Array.from(c.getContext('2d').getImageData(16, 8, 1, 1).data.slice(0, 3))"
    )
    expected = reference.decode(FACTS["placeholder"]["blurhash"], 32, 32)[8][16]
    assert all(abs(a - b) <= 3 for a, b in zip(drawn, expected, strict=True)), (drawn, expected)
    # The copy is marked, with a link to the original.
    dup = page.locator(f".cell:has(.tile[data-image-id='{COPY}']) a[data-testid=duplicate]")
    assert dup.get_attribute("href") == f"#/images/{FIRST}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery-facts-grid.png"), full_page=True)
    frame.locator("canvas").screenshot(path=str(ARTIFACTS / "gallery-facts-blurhash.png"))  # what shows while it loads
    dup.click()
    page.locator("[data-testid=dominant-color]").wait_for(timeout=5_000)
    assert page.url.endswith(f"#/images/{FIRST}")
    assert page.locator("#detail-title").inner_text() == "beach.jpg"
    assert errors == []


def test_the_detail_view_has_an_address_that_survives_a_reload(browser: Any) -> None:
    page, errors = open_gallery(browser)
    tile = page.locator(f".tile[data-image-id='{COPY}']")
    tile.click()
    page.locator("[data-testid=dominant-color]").wait_for(timeout=5_000)
    assert page.url == f"{ORIGIN}/#/images/{COPY}"
    page.reload()
    dialog = page.locator("#detail")
    page.locator("[data-testid=dominant-color]").wait_for(timeout=5_000)
    assert dialog.is_visible()
    text = dialog.inner_text()
    # The facts, and the file name once (the title), not again above the table.
    assert text.splitlines().count("beach.jpg") == 1, text  # the title; it was also a heading over the table
    assert FACTS["phash"] in text and FACTS["placeholder"]["blurhash"] in text and FACTS["placeholder"]["dominant_color"] in text
    assert page.locator("[data-testid=original-link]").get_attribute("href") == f"#/images/{FIRST}"
    page.locator("[data-testid=similar-link]").first.wait_for(timeout=5_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery-facts-detail.png"))
    # Following the link to the original shows the original; Back returns to the copy.
    page.locator("[data-testid=original-link]").click()
    page.wait_for_function(
        f"() => document.getElementById('detail-title').textContent === 'beach.jpg' && location.hash === '#/images/{FIRST}'"
    )
    page.locator("[data-testid=similar-link]", has_text="home/beach.jpg").wait_for(timeout=5_000)
    page.go_back()
    page.locator("[data-testid=original-link]").wait_for(timeout=5_000)
    # Closing drops the address; the gallery is what a reload then shows.
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden", timeout=5_000)
    # The dialog's `close` event (which drops the address) is dispatched as a task after it hides.
    page.wait_for_function("() => location.hash === ''", timeout=5_000)
    assert page.url == f"{ORIGIN}/"
    assert errors == []


@pytest.mark.parametrize(
    ("write_auth", "read_auth", "shown"),
    [("none", "none", False), ("iam", "none", False), ("api_key", "none", True), ("cognito", "api_key", True), ("iam", "cognito", False)],
)
def test_the_api_key_box_shows_only_where_writes_or_reads_need_a_key(browser: Any, write_auth: str, read_auth: str, shown: bool) -> None:
    page, errors = open_gallery(browser, write_auth, read_auth=read_auth)
    page.locator(".tile").first.wait_for(timeout=10_000)
    assert page.locator("#apikey").is_visible() is shown
    assert errors == []


def test_an_empty_gallery_leaves_no_blank_band_above_the_grid(browser: Any) -> None:
    page, errors = open_gallery(browser, listing=[])
    empty = page.locator("[data-testid=empty]")
    empty.wait_for(timeout=10_000)
    gap = page.evaluate(
        "document.getElementById('empty').getBoundingClientRect().top - document.getElementById('drop').getBoundingClientRect().bottom"
    )
    assert gap <= 32, f"{gap} px between the drop zone and the empty notice"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery-facts-empty.png"))
    assert errors == []
