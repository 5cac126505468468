"""The gallery in a real browser: headless Chromium (Debian's `chromium`, driven by
Playwright) against the local stack (`python -m devstack run`: moto's server, the
processor, `chalice local`). A person's path: open the page, see the seeded samples (the
rejected one with its reason), pick a real photo, watch the progress bar, wait for its
thumbnail, open the detail view and read every rendition. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import CORPUS, FIXTURES, ROOT
from tests.e2e.test_local_stack import Stack
from tests.support.browser import ARTIFACTS, chromium

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Running:
    api: str  # http://127.0.0.1:<port>
    lines: list[str]  # the stack's console output so far (grows while it runs)


def _photo() -> Path:
    photo = CORPUS / "photo_8mp_iphone6.jpg"
    return photo if photo.is_file() else FIXTURES / "alpha_paper_2048x1536.png"


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    # Two of ./samples in the inbox, uploaded at start: a small photo and a text file named
    # .jpg that must be rejected (fewer than the full seed, to keep the test short).
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("landscape.jpg", "not-a-photo.jpg"):
        shutil.copy(ROOT / "samples" / name, inbox / name)
    stack = Stack(tmp_path, inbox, tmp_path / "outbox")
    try:
        ready = stack.wait_for_line("ready:", timeout=90)
        yield Running(api=dict(re.findall(r"(api|aws)=(\S+)", ready))["api"], lines=stack.lines)
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGINT)
            try:
                stack.process.wait(30)
            except Exception:
                stack.process.kill()
                stack.process.wait(10)


def test_upload_a_photo_and_read_its_renditions_in_the_gallery(browser: Any, stack: Running, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    console: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        walk_through(page, stack.api, tmp_path, console)
    except Exception as failure:
        # What a person would look at: the page, the browser console and the stack's own log.
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "gallery-failure.png"), full_page=True)
        report = "\n".join([str(failure), "--- browser console ---", *console[-30:], "--- local stack output ---", *stack.lines[-80:]])
        raise AssertionError(report) from failure
    assert errors == []


def walk_through(page: Any, api: str, tmp_path: Path, console: list[str]) -> None:
    page.goto(api + "/")

    # The samples arrive by polling; the text file is rejected and says why. (A generous wait:
    # the stack processes them while the other tests load the machine; a failure shows its log.)
    rejected = page.locator(".tile[data-status=rejected]", has_text="not-a-photo.jpg")
    rejected.wait_for(timeout=90_000)
    assert "not_an_image" in rejected.locator("[data-testid=reason]").inner_text()
    page.locator(".tile[data-status=processed] img[data-testid=thumbnail]").first.wait_for(timeout=60_000)

    # Upload from the keyboard: Tab reaches the picker (a display:none input never gets focus),
    # Enter opens the file chooser; then POST /uploads and the presigned POST to the emulator.
    photo = _photo()
    with page.expect_file_chooser(timeout=5_000) as chooser:
        for _ in range(3):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "picker":
                break
        assert page.evaluate("document.activeElement.id") == "picker", "Tab does not reach the upload button"
        page.keyboard.press("Enter")
    chooser.value.set_files(str(photo))
    row = page.locator("[data-testid=upload-row]", has_text=photo.name)
    row.locator("xpath=self::*[@data-image-id]").wait_for(timeout=30_000)
    assert row.locator("progress").get_attribute("value") == "100"
    image_id = row.get_attribute("data-image-id")
    assert image_id and re.fullmatch(r"[0-9a-f]{32}", image_id)

    # Its thumbnail appears once the processor has run, and the browser can load it.
    tile = page.locator(f".tile[data-image-id='{image_id}'][data-status=processed]")
    thumbnail = tile.locator("img[data-testid=thumbnail]")
    thumbnail.wait_for(timeout=60_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle(), timeout=15_000)
    assert thumbnail.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [150, 150]
    # Until it loaded, the thumbnail sat on the image's BlurHash, over its dominant colour.
    assert tile.locator(".frame canvas[data-testid=blurhash]").count() == 1
    assert re.fullmatch(r"#[0-9a-f]{6}", tile.locator(".frame").get_attribute("data-placeholder") or "")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery-grid.png"), full_page=True)

    # The detail view lists every rendition the API reports, with format, size and bytes.
    record = requests.get(f"{api}/images/{image_id}", timeout=10).json()
    assert record["status"] == "processed" and record["source_key"].endswith(photo.name)
    # Keyboard: Enter on the tile opens the detail view with focus on Close (not Delete, where
    # a second Enter would start a deletion); Escape closes it and focus returns to the tile.
    tile.focus()
    page.keyboard.press("Enter")
    rows = page.locator("[data-testid=rendition]")
    rows.first.wait_for(timeout=15_000)
    listed = {row.get_attribute("data-preset"): [cell.inner_text() for cell in row.locator("td").all()] for row in rows.all()}
    assert set(listed) == {r["preset"] for r in record["renditions"]} and len(listed) >= 3
    for rendition in record["renditions"]:
        preset, fmt, size, size_bytes, saved = listed[rendition["preset"]]
        assert (preset, fmt, size) == (rendition["preset"], rendition["format"], f"{rendition['width']}×{rendition['height']}")
        assert size_bytes.endswith(("B", "KB", "MB"))
        shown = float(re.search(r"\((-?[\d.]+)%\)", saved).group(1))  # type: ignore[union-attr]
        assert abs(shown - 100 * (record["bytes"] - rendition["bytes"]) / record["bytes"]) < 0.06, saved
    # Every rendition link works as the browser would follow it: 200, the format's Content-Type.
    links = {row.get_attribute("data-preset"): row.locator("a").get_attribute("href") for row in rows.all()}
    for rendition in record["renditions"]:
        answer = requests.get(links[rendition["preset"]], timeout=10)
        assert answer.status_code == 200, rendition["preset"]
        assert answer.headers["Content-Type"] == "image/" + rendition["format"].lower(), rendition["preset"]
        assert len(answer.content) == rendition["bytes"]
    # The detail view has its own address, and shows the image facts.
    assert page.url.endswith(f"#/images/{image_id}")
    facts = page.locator("#detail dl").inner_text()
    assert record["phash"] in facts and record["placeholder"]["dominant_color"] in facts and record["placeholder"]["blurhash"] in facts
    preview = page.locator("[data-testid=preview]")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle(), timeout=15_000)
    # <picture>: Chromium decodes AVIF, so it takes the first <source>; the <img> reserves its box.
    assert ".avif" in page.evaluate("img => img.currentSrc", preview.element_handle())
    assert preview.get_attribute("width") and preview.get_attribute("height")
    page.screenshot(path=str(ARTIFACTS / "gallery-detail.png"))
    assert page.evaluate("document.activeElement.id") == "close"
    page.keyboard.press("Escape")
    page.locator("#detail").wait_for(state="hidden", timeout=5_000)
    assert page.evaluate("document.activeElement.dataset.imageId") == image_id
    assert page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.alt).map(i => i.src)") == []

    phone_width(page.context.browser, page.url, image_id)

    # A file the pipeline cannot process is refused before anything is stored, with the reason.
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.set_input_files("#picker", str(notes))
    refused = page.locator("[data-testid=upload-row]", has_text="notes.txt").locator(".state.error")
    refused.wait_for(timeout=15_000)
    assert "not an image type" in refused.inner_text()

    # A file over MAX_SOURCE_BYTES (50 MB here; sparse, so it costs no disk) is refused by the
    # page itself, in megabytes, before any request: no form asked for, nothing stored.
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/uploads" in request.url else None)
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:
        handle.truncate(51 * 1024 * 1024)
    page.set_input_files("#picker", str(huge))
    too_large = page.locator("[data-testid=upload-row]", has_text="huge.jpg").locator(".state.error")
    too_large.wait_for(timeout=5_000)
    assert "the file is 51.0 MB; the upload limit is 50.0 MB" in too_large.inner_text()
    assert asked == []

    # An empty listing says why it is empty and what to do (here: a filter nothing matches).
    page.select_option("#filter", "failed")
    empty = page.locator("[data-testid=empty]")
    empty.wait_for(timeout=10_000)
    assert 'No images with status "failed"' in empty.inner_text()
    page.select_option("#filter", "")
    page.locator(f".tile[data-image-id='{image_id}']").wait_for(timeout=10_000)
    assert empty.is_hidden()

    # Everything so far, the waits for processing and the refusals included, left the console
    # clean (polling GET /images/{id} logged a 404 error per second while an upload was processed).
    assert [line for line in console if line.startswith("error")] == []

    # The API unreachable (the stack stopped, the network down): the page says so in words, and
    # the message goes away once the API answers again (it used to stay, stale, forever).
    page.route("**/images?*", lambda route: route.abort("connectionrefused"))
    note = page.locator("#notice")
    page.wait_for_function("() => document.getElementById('notice').textContent.includes('cannot reach the API')", timeout=10_000)
    page.unroute("**/images?*")
    page.wait_for_function("() => document.getElementById('notice').textContent === ''", timeout=10_000)
    assert note.inner_text() == ""


def phone_width(browser: Any, url: str, image_id: str) -> None:
    """A 390 px wide phone: nothing scrolls sideways, in the grid or in the detail view (the
    renditions table and the preview used to push the dialog wider than the screen)."""
    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone.goto(url)
        tile = phone.locator(f".tile[data-image-id='{image_id}']")
        tile.wait_for(timeout=15_000)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        assert tile.bounding_box()["width"] < 195, "one tile per row on a phone"  # type: ignore[index]
        tile.tap()
        phone.locator("[data-testid=rendition]").first.wait_for(timeout=15_000)
        ARTIFACTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "gallery-phone-detail.png"))
        overflow = phone.evaluate("(() => { const d = document.getElementById('detail'); return d.scrollWidth - d.clientWidth; })()")
        assert overflow <= 0, f"the detail view is {overflow} px wider than the phone's screen"
        saved = phone.locator("[data-testid=rendition] td").nth(4)
        box = saved.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390, "the 'saved' column is off screen"
    finally:
        phone.close()
