"""Animated GIF, WebP and APNG kept moving: animated WebP renditions with every frame, its
duration and the loop count, composited as browsers show them, within the budgets."""

from __future__ import annotations

import gc
import io
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from chalicelib.imaging import animation, codec, render
from chalicelib.models import ErrorCode, RejectedInput, Rendition
from chalicelib.presets import ANIMATION_CAP, WEB, Preset, Profile
from tests.conftest import fixture_bytes
from tests.support import formats, hostile
from tests.support.imagetools import LIMITS, mean_abs_diff


def animated(result: render.RenderResult) -> list[Rendition]:
    return [r for r in result.renditions if r.animated]


def play(data: bytes) -> tuple[list[Image.Image], list[int], int]:
    """What a viewer gets from an animated WebP: frames (RGBA), durations, loop count."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    frames, durations = [], []
    for index in range(image.n_frames):
        image.seek(index)
        frames.append(image.convert("RGBA"))
        durations.append(int(image.info["duration"]))
    return frames, durations, int(image.info.get("loop", 0))


def rgba_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 4


@pytest.fixture(scope="session")
def gif_case() -> tuple[bytes, list[Image.Image]]:
    return formats.gif_disposal_transparency()


@pytest.fixture(scope="session")
def apng_case() -> tuple[bytes, list[Image.Image]]:
    return formats.apng_blend_dispose()


@pytest.mark.parametrize("case", ["gif_case", "apng_case"])
def test_frames_are_composited_as_browsers_show_them(case: str, request: pytest.FixtureRequest) -> None:
    """GIF: disposal 2 clears to transparent, transparency shows through. APNG: OVER blends
    with real alpha, "previous" disposal restores the canvas before the frame."""
    data, expected = request.getfixturevalue(case)
    result = render.render(data, WEB, LIMITS, "anim")
    [moving] = animated(result)  # a 64 px source: one animated rendition, at its own size
    assert (moving.width, moving.height, moving.frames) == (64, 48, 3)
    frames, durations, loop = play(moving.data)
    assert durations == [100, 200, 300] and loop == 0
    assert len(frames) == len(expected)
    for got, want in zip(frames, expected, strict=True):
        assert rgba_diff(got, want) < 3
    if case == "gif_case":
        assert frames[2].getpixel((5, 5))[3] == 0  # type: ignore[index]  # cleared by disposal: transparent, not black
    else:
        assert frames[1].getpixel((5, 5))[3] == 255  # type: ignore[index]  # red OVER opaque blue stays opaque
        assert frames[2].getpixel((5, 5))[:3] == pytest.approx((0, 0, 255), abs=4)  # type: ignore[index]


def test_wrong_compositing_would_be_caught(gif_case: tuple[bytes, list[Image.Image]]) -> None:
    """The threshold above separates right from wrong: without disposal, frame 2 differs."""
    _, expected = gif_case
    undisposed = expected[1].copy()
    undisposed.paste((0, 255, 0, 255), (40, 24, 64, 48))
    assert rgba_diff(undisposed, expected[2]) > 3


def test_animated_webp_source_keeps_frames_durations_and_loop() -> None:
    frames = formats.moving_square_frames(12, (200, 150))
    durations = [40 + 10 * i for i in range(12)]
    data = formats.save_animation(frames, "WEBP", durations, loop=4, quality=90)
    result = render.render(data, WEB, LIMITS, "anim")
    [moving] = animated(result)
    got, got_durations, loop = play(moving.data)
    assert moving.frames == 12 and len(got) == 12
    assert got_durations == durations and loop == 4
    for shown, source in zip(got, frames, strict=True):
        assert mean_abs_diff(shown, source) < 4


def test_gif_loop_count_means_repeats() -> None:
    """animated_loop3.gif plays 3 times (NETSCAPE count 2 = repeats after the first play):
    the WebP's loop count, which counts plays, is 3."""
    data = fixture_bytes("animated_loop3.gif")
    source = Image.open(io.BytesIO(data))
    assert source.info["loop"] == 2
    source_durations = []
    for index in range(source.n_frames):
        source.seek(index)
        source_durations.append(int(source.info["duration"]))
    result = render.render(data, WEB, LIMITS, "anim")
    moving = animated(result)
    assert [r.preset for r in moving] == ["w320_animated", "w1024_animated"]
    assert [(r.width, r.frames) for r in moving] == [(320, 10), (370, 10)]  # 1024 capped to the source's 370 px
    for rendition in moving:
        frames, durations, loop = play(rendition.data)
        assert len(frames) == 10 and durations == source_durations and loop == 3


def test_gif_without_netscape_block_plays_once() -> None:
    data = formats.save_animation([hostile.palette(f) for f in formats.moving_square_frames(3)], "GIF", [100] * 3, loop=None)
    assert "loop" not in Image.open(io.BytesIO(data)).info
    [moving, *_] = animated(render.render(data, WEB, LIMITS, "anim"))
    assert play(moving.data)[2] == 1


def test_apng_source_keeps_its_frames() -> None:
    frames = [f.convert("RGBA") for f in formats.moving_square_frames(6)]
    data = formats.save_animation(frames, "PNG", [70] * 6, loop=0)
    [moving] = animated(render.render(data, WEB, LIMITS, "anim"))
    got, durations, _ = play(moving.data)
    assert durations == [70] * 6
    for shown, source in zip(got, frames, strict=True):
        assert mean_abs_diff(shown, source) < 4


def test_stills_are_the_first_frame() -> None:
    frames = [Image.new("RGB", (400, 300), (i * 60, 255 - i * 60, 80)) for i in range(5)]
    data = formats.save_animation(frames, "WEBP", [100] * 5, quality=95)
    result = render.render(data, WEB, LIMITS, "anim")
    stills = {r.preset: r for r in result.renditions if not r.animated}
    assert {"thumbnail", "w320_jpeg", "w320_webp"} <= set(stills)
    w320 = Image.open(io.BytesIO(stills["w320_webp"].data))
    assert getattr(w320, "n_frames", 1) == 1
    assert mean_abs_diff(w320, frames[0]) < 3 and mean_abs_diff(w320, frames[3]) > 30
    assert result.source.frames == 5


def test_animation_still_gives_todays_renditions() -> None:
    data = fixture_bytes("animated_loop3.gif")
    kept = render.render(data, WEB, LIMITS, "anim")
    still = render.render(data, WEB, codec.DecodeLimits(LIMITS.max_pixels, LIMITS.max_frames, keep_animation=False), "anim")
    assert animated(kept) and not animated(still)
    assert [r.preset for r in still.renditions] == [r.preset for r in kept.renditions if not r.animated]


def test_still_sources_get_no_animated_rendition() -> None:
    result = render.render(fixture_bytes("orient_landscape_1.jpg"), WEB, LIMITS, "still")
    assert not animated(result)
    assert not any(name.endswith("_animated") for name in result.skipped)


def test_the_cap_bounds_the_widths() -> None:
    widths = [p.width for p in WEB.presets if p.animated]
    assert widths and max(w for w in widths if w is not None) <= ANIMATION_CAP and min(w for w in widths if w is not None) >= 320
    frames = [hostile.palette(f) for f in formats.moving_square_frames(2, (1500, 100))]
    result = render.render(formats.save_animation(frames, "GIF", [100, 100]), WEB, LIMITS, "wide")
    assert [r.width for r in animated(result)] == [320, ANIMATION_CAP]


def test_total_pixels_budget_is_decided_before_decoding_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: Any) -> Iterator[animation.Frame]:
        raise AssertionError("frames were decoded")

    monkeypatch.setattr(animation, "frames", never)
    data = fixture_bytes("animated_loop3.gif")  # 10 frames of 370x285 = 1,054,500 pixels
    limits = codec.DecodeLimits(LIMITS.max_pixels, LIMITS.max_frames, max_animation_pixels=1_000_000)
    with pytest.raises(RejectedInput) as caught:
        render.render(data, WEB, limits, "anim")
    assert caught.value.code is ErrorCode.TOO_MANY_PIXELS and "MAX_ANIMATION_PIXELS" in caught.value.message


def test_too_many_frames_is_refused() -> None:
    limits = codec.DecodeLimits(LIMITS.max_pixels, max_frames=9)
    with pytest.raises(RejectedInput) as caught:
        render.render(fixture_bytes("animated_loop3.gif"), WEB, limits, "anim")
    assert caught.value.code is ErrorCode.TOO_MANY_FRAMES


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_frames_are_streamed_not_held(fmt: str) -> None:
    """At most a couple of decoded canvases are alive at any time, however many frames."""
    frames = formats.moving_square_frames(30, (96, 72))
    source = [hostile.palette(f) for f in frames] if fmt == "GIF" else frames
    data = formats.save_animation(source, fmt, [50] * 30)
    image = Image.open(io.BytesIO(data), formats=[fmt])
    alive: list[weakref.ref[Image.Image]] = []
    most = 0
    for frame in animation.frames(image, data):
        alive.append(weakref.ref(frame.image))
        del frame
        gc.collect()
        most = max(most, sum(ref() is not None for ref in alive))
    assert len(alive) == 30 and most <= 2


def test_corrupt_later_frame_is_rejected_not_raised() -> None:
    data = bytearray(fixture_bytes("animated_loop3.gif"))
    data[-200:-1] = bytes(199)  # the last frames' data zeroed
    try:
        render.render(bytes(data), WEB, LIMITS, "anim")
    except RejectedInput as refused:
        assert refused.code is ErrorCode.CORRUPT_IMAGE


def test_animated_preset_is_data() -> None:
    preset = Preset.from_dict({"name": "moving", "format": "webp", "width": 320, "animated": True})
    assert preset.animated and preset.as_dict()["animated"] is True
    assert "animated" not in Preset("still", "JPEG").as_dict()  # profiles without animation keep their version
    with pytest.raises(ValueError, match="animated"):
        Preset("moving", "JPEG", width=320, animated=True)
    profile = Profile("mine", (preset,))
    result = render.render(fixture_bytes("animated_loop3.gif"), profile, LIMITS, "anim")
    assert [(r.preset, r.frames, r.content_type) for r in result.renditions] == [("moving", 10, "image/webp")]


def test_apng_frame_outside_the_canvas_is_corrupt_before_it_is_decoded() -> None:
    """Found by the fuzz test: a 4-billion-pixel-wide fcTL reached Pillow's bomb error."""
    with pytest.raises(RejectedInput) as caught:
        render.render(hostile.apng_frame_outside_canvas(), WEB, LIMITS, "anim")
    assert caught.value.code is ErrorCode.CORRUPT_IMAGE and "outside" in caught.value.message
