"""Bounded fuzzing of the decode-and-render path with mutated real images.

Hypothesis mutates real files (the photo fixtures and small images re-encoded from them in
every allowed format: flipped, overwritten, inserted, duplicated, zeroed bytes and
truncations, biased towards headers) and feeds them to `render.render`. The only exception
allowed out is `RejectedInput`; each image must finish within PER_IMAGE_SECONDS (a SIGALRM
watchdog turns a hang into a failure). The run stops at FUZZ_SECONDS (default 10) whatever
the example count: Hypothesis runs of 200 examples repeat with seeds 0, 1, 2, ... so CI is
reproducible; set FUZZ_SECONDS=600 FUZZ_RANDOM=1 for a longer, random local run.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.imaging import codec, render
from chalicelib.models import RejectedInput
from chalicelib.presets import Preset, Profile
from tests.conftest import fixture_bytes
from tests.support import hostile

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "10"))
FUZZ_MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "1000000"))
PER_IMAGE_SECONDS = 10
LIMITS = codec.DecodeLimits(max_pixels=50_000_000, max_frames=1000)
# One preset per output format, small: the decoders are the target, not the encoders' speed.
PROFILE = Profile(
    "fuzz",
    (
        Preset("thumb", "JPEG", width=96, height=96, fit="cover", always=True),
        Preset("small", "WEBP", width=128, always=True),
        Preset("png", "PNG", width=64, always=True),
    ),
)


@cache
def seeds() -> dict[str, bytes]:
    photo = hostile.photo((96, 72))
    return {
        "jpeg-exif-icc": fixture_bytes("orient_landscape_6.jpg"),
        "jpeg-progressive": hostile.save(photo, "JPEG", progressive=True, quality=70),
        "gif-animated": fixture_bytes("animated_loop3.gif"),
        "png-rgba": hostile.save(photo.convert("RGBA"), "PNG"),
        "png-palette-trns": hostile.save(hostile.palette(photo, 16), "PNG", transparency=0),
        "apng": hostile.case("apng"),
        "webp-lossy": hostile.save(photo, "WEBP", quality=60),
        "webp-lossless-alpha": hostile.save(photo.convert("RGBA"), "WEBP", lossless=True),
        "webp-animated": hostile.case("animated-webp"),
        "tiff-lzw": hostile.save(photo, "TIFF", compression="tiff_lzw"),
        "tiff-multipage": hostile.tiff_pages(3),
        "tiff-big": hostile.save(photo, "TIFF", big_tiff=True),
        "tiff-jpeg": hostile.save(photo, "TIFF", compression="jpeg"),
        "png-16bit-rgba": hostile.png_16bit((48, 36), 6, (60000, 30000, 1000, 40000)),
        "bmp-rle8": hostile.bmp_rle8(),
        "bmp": hostile.save(photo, "BMP"),
        "mpo": hostile.case("mpo"),
        **({"avif": hostile.case("avif"), "avif-animated": hostile.case("avif-animated")} if hostile.AVIF else {}),
        "cmyk-jpeg": hostile.save(photo.convert("CMYK"), "JPEG"),
    }


mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("set"), st.floats(0, 1), st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01])),
    st.tuples(st.just("header"), st.integers(0, 400), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.floats(0.05, 1), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("duplicate"), st.floats(0, 1), st.integers(1, 4096)),
    st.tuples(st.just("zero"), st.floats(0, 1), st.integers(1, 2048)),
    st.tuples(st.just("big-int"), st.integers(0, 300), st.sampled_from([b"\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00"])),
)


def mutate(data: bytes, operations: list[tuple[str, Any, Any]]) -> bytes:
    out = bytearray(data)
    for kind, where, what in operations:
        if not out:
            break
        pos = min(int(where * len(out)), len(out) - 1) if isinstance(where, float) else min(where, len(out) - 1)
        if kind == "flip":
            out[pos] ^= what
        elif kind in ("set", "header"):
            out[pos] = what
        elif kind == "truncate":
            del out[max(1, pos) :]
        elif kind == "insert":
            out[pos:pos] = what
        elif kind == "duplicate":
            out[pos:pos] = out[pos : pos + what]
        elif kind == "zero":
            out[pos : pos + what] = bytes(len(out[pos : pos + what]))
        elif kind == "big-int":
            out[pos : pos + len(what)] = what
    return bytes(out)


@contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    def expire(*_: Any) -> None:
        raise TimeoutError(f"an image took more than {seconds} s to decode and render")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


CHUNK = 200  # examples per Hypothesis run; runs repeat, each with its own seed, until the budget is spent


def fuzz_chunk(run_seed: int, stats: dict[str, float], stop_at: float) -> None:
    """One Hypothesis run of at most CHUNK examples, reproducible from `run_seed` (printed
    with any failure). Examples after `stop_at` are no-ops, so a run ends soon after it."""

    @hypothesis.seed(run_seed)
    @settings(
        max_examples=CHUNK,
        deadline=None,  # the watchdog enforces PER_IMAGE_SECONDS; Hypothesis' own deadline is flaky on a busy CI box
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(source=st.sampled_from(sorted(seeds())), operations=st.lists(mutation, min_size=1, max_size=4))
    def check(source: str, operations: list[tuple[str, Any, Any]]) -> None:
        if time.monotonic() > stop_at:
            return
        data = mutate(seeds()[source], operations)
        stats["examples"] += 1
        with watchdog(PER_IMAGE_SECONDS):
            try:
                result = render.render(data, PROFILE, LIMITS, "fuzz", workers=1)
            except RejectedInput:
                stats["rejected"] += 1
                return
        stats["rendered"] += 1
        for rendition in result.renditions:
            assert rendition.data, f"{source}: empty {rendition.preset}"

    check()


# Mutated input makes Pillow warn (corrupt EXIF, tag data larger than the file, ...): expected
# here, and a summary of ~300 such lines would bury real warnings. Only Pillow's, only here.
@pytest.mark.filterwarnings("ignore::UserWarning:PIL")
@pytest.mark.slow
def test_mutated_images_only_ever_raise_rejected_input() -> None:
    """Runs for FUZZ_SECONDS (or FUZZ_MAX_EXAMPLES images), whichever comes first. Seeds are
    0, 1, 2, ... (reproducible in CI) or random with FUZZ_RANDOM=1."""
    stats = {"examples": 0.0, "rejected": 0.0, "rendered": 0.0, "runs": 0.0}
    first = random.SystemRandom().randrange(2**32) if os.environ.get("FUZZ_RANDOM") else 0
    stop_at = time.monotonic() + FUZZ_SECONDS
    while time.monotonic() < stop_at and stats["examples"] < FUZZ_MAX_EXAMPLES:
        fuzz_chunk(first + int(stats["runs"]), stats, stop_at)
        stats["runs"] += 1
    print(f"fuzz: {stats} (first seed {first})")
    # Guards the guard: the decoders must really have been exercised, both ways.
    assert stats["examples"] >= 100
    assert stats["rejected"] > 0 and stats["rendered"] > 0
