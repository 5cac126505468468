"""Image facts: BlurHash, dominant colour, LQIP, perceptual hash and its duplicate bands."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path

import blurhash as reference
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from chalicelib.duplicates import band_widths, bands, hamming
from chalicelib.facts import blurhash as ours
from chalicelib.facts import compute_facts, phash
from chalicelib.facts.colour import dominant_color, lqip
from chalicelib.settings import DEFAULT_DUPLICATE_MAX_DISTANCE as DUPLICATE_MAX_DISTANCE
from tests.conftest import CORPUS, fixture_bytes


def noise(size: tuple[int, int], seed: int = 1) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))


def photo(size: tuple[int, int] = (32, 24)) -> Image.Image:
    image = Image.open(io.BytesIO(fixture_bytes("orient_landscape_1.jpg"))).convert("RGB")
    return image.resize(size, Image.Resampling.LANCZOS)


def pixel_rows(image: Image.Image) -> list[list[tuple[int, int, int]]]:
    return [[image.getpixel((x, y)) for x in range(image.size[0])] for y in range(image.size[1])]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("image", "components"),
    [
        (photo(), (4, 3)),
        (photo((24, 32)), (3, 4)),
        (noise((32, 32)), (4, 4)),
        (noise((17, 9), 2), (5, 2)),
        (Image.new("RGB", (8, 8), (200, 30, 90)), (4, 3)),
    ],
    ids=["photo-landscape", "photo-portrait", "noise", "odd-size", "flat"],
)
def test_blurhash_is_the_reference_encoders_string(image: Image.Image, components: tuple[int, int]) -> None:
    # On a copy already at the grid size both see the same pixels: the strings must match.
    assert ours.encode(image, components) == reference.encode(pixel_rows(image), *components)


def test_blurhash_components_follow_the_aspect_ratio() -> None:
    assert ours.encode(photo((64, 48)))[0] == "L"  # (4-1) + (3-1)*9 = 21: 4x3
    assert ours.encode(photo((48, 64)))[0] == "T"  # (3-1) + (4-1)*9 = 29: 3x4


def test_blurhash_average_colour_is_taken_in_linear_light() -> None:
    # A fine black and white checkerboard averages to 50% light: sRGB 188, not the 128 a
    # gamma-space average (or a plain resize before encoding) gives.
    board = Image.new("RGB", (256, 256))
    draw = ImageDraw.Draw(board)
    for y in range(0, 256, 2):
        for x in range(y % 4 // 2 * 2, 256, 4):
            draw.rectangle((x, y, x + 1, y + 1), fill=(255, 255, 255))
    r, g, b = ours.average_colour(ours.encode(board))
    assert 185 <= r <= 191 and r == g == b


def split(size: tuple[int, int], share: float, first: tuple[int, int, int], second: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", size, second)
    image.paste(first, (0, 0, round(size[0] * share), size[1]))
    return image


def test_dominant_colour_is_the_largest_cluster_not_the_mean() -> None:
    assert dominant_color(split((300, 200), 0.7, (255, 0, 0), (0, 0, 255))) == "#ff0000"
    assert dominant_color(split((300, 200), 0.3, (255, 0, 0), (0, 0, 255))) == "#0000ff"
    # Noisy shades of red still come out red, not the purple mean.
    image = Image.blend(split((300, 200), 0.7, (230, 20, 20), (20, 20, 230)), noise((300, 200)), 0.15)
    colour = dominant_color(image)
    assert int(colour[1:3], 16) > 150 and int(colour[5:7], 16) < 90, colour


@pytest.mark.parametrize(
    "image", [photo((256, 192)), noise((256, 256)), Image.new("RGB", (1, 1)), noise((1, 200))], ids=["photo", "noise", "1px", "1px-wide"]
)
def test_lqip_is_a_tiny_webp_data_uri(image: Image.Image) -> None:
    uri = lqip(image)
    assert uri.startswith("data:image/webp;base64,") and len(uri) <= 1024
    preview = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert preview.format == "WEBP" and max(preview.size) <= 16


def test_lqip_looks_like_the_image() -> None:
    preview = Image.open(io.BytesIO(base64.b64decode(lqip(split((200, 100), 0.5, (250, 0, 0), (0, 0, 250))).split(",", 1)[1]))).convert(
        "RGB"
    )
    left, right = preview.getpixel((0, preview.size[1] // 2)), preview.getpixel((preview.size[0] - 1, preview.size[1] // 2))
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]  # type: ignore[index]


def test_phash_is_16_hex_digits_stable_and_tells_photos_apart() -> None:
    a, b = photo((256, 192)), noise((256, 192))
    assert len(phash(a)) == 16 and phash(a) == phash(a.copy()) and phash(a).lower() == phash(a)
    assert hamming(phash(a), phash(a.resize((128, 96)))) <= 4
    assert hamming(phash(a), phash(b)) > DUPLICATE_MAX_DISTANCE


def test_hamming_counts_differing_bits() -> None:
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("00000000000000f0", "0000000000000010") == 3


@pytest.mark.parametrize("distance", [0, 1, 7, 14, 63, 80])
def test_bands_cover_all_bits(distance: int) -> None:
    widths = band_widths(distance)
    assert sum(widths) == 64 and len(widths) == min(64, distance + 1) and max(widths) - min(widths) <= 1
    assert len(bands("0123456789abcdef", distance)) == len(widths)


@given(st.integers(0, 2**64 - 1), st.integers(0, 20), st.randoms(use_true_random=False))
def test_hashes_within_the_distance_share_a_band(value: int, distance: int, rng: random.Random) -> None:
    flipped = value
    for bit in rng.sample(range(64), rng.randint(0, distance)):
        flipped ^= 1 << bit
    a, b = f"{value:016x}", f"{flipped:016x}"
    assert hamming(a, b) <= distance
    assert set(bands(a, distance)) & set(bands(b, distance))  # pigeonhole: one band is untouched


def test_bands_of_different_distances_never_collide() -> None:
    assert not set(bands("0" * 16, 8)) & set(bands("0" * 16, 14))


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (300, 200), (0, 0, 0, 0)),
        Image.new("L", (64, 64), 7),
        Image.new("P", (40, 40)),
        Image.new("RGB", (1, 1), (9, 9, 9)),
        noise((1, 300)),
        noise((3000, 2)),
        photo((2048, 1536)),
    ],
    ids=["transparent", "grey", "palette", "1px", "1px-wide", "2px-tall", "2048px"],
)
def test_compute_facts_never_fails(image: Image.Image) -> None:
    facts = compute_facts(image)
    assert len(facts.phash) == 16 and facts.placeholder.dominant_color.startswith("#")
    assert len(facts.placeholder.blurhash) == 4 + 2 * 12 and len(facts.placeholder.lqip) <= 1024
    assert set(facts.placeholder.as_dict()) == {"blurhash", "dominant_color", "lqip"}


def test_transparent_pixels_count_as_white_like_the_renditions() -> None:
    assert compute_facts(Image.new("RGBA", (50, 50), (255, 0, 0, 0))).placeholder.dominant_color == "#ffffff"


@pytest.mark.slow
def test_phash_separation_on_the_corpus_supports_the_default_distance() -> None:
    """The measurement behind DUPLICATE_MAX_DISTANCE (bench/facts.py prints it)."""
    from bench.facts import distinct_photos, separation, upright

    corpus = CORPUS if CORPUS.is_dir() else Path("/work/shared/corpus")
    if not corpus.is_dir():
        pytest.skip(f"the photo corpus is not at {CORPUS} (set IMAGE_PIPELINE_CORPUS)")
    photos = [(p.name, upright(p, 1024)) for p in distinct_photos(corpus)]
    result = separation(photos)
    assert result.same_max <= DUPLICATE_MAX_DISTANCE, result
    assert result.different_min > DUPLICATE_MAX_DISTANCE, result


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_render_hands_the_facts_an_upright_small_copy_of_the_whole_picture(orientation: int) -> None:
    from chalicelib.presets import CLASSIC, WEB
    from tests.support.imagetools import render_all

    source = CORPUS / f"orient_landscape_{orientation}.jpg"
    data = source.read_bytes() if source.exists() else fixture_bytes(f"orient_landscape_{orientation}.jpg")
    upright = compute_facts(Image.open(io.BytesIO(fixture_bytes("orient_landscape_1.jpg"))).convert("RGB"))
    for profile in (WEB, CLASSIC):
        preview = render_all(data, profile).preview
        assert preview is not None and preview.size[0] > preview.size[1]  # landscape: upright
        assert min(preview.size) >= 64 and max(preview.size) <= 320  # the thumbnail's scaled copy, not a big one
        assert hamming(compute_facts(preview).phash, upright.phash) <= 4


def test_render_preview_exists_when_no_preset_is_made() -> None:
    from chalicelib.presets import Preset, Profile
    from tests.support.imagetools import render_all

    only_wide = Profile("wide", (Preset("w4000", "JPEG", width=4000),))
    result = render_all(fixture_bytes("orient_landscape_6.jpg"), only_wide)
    assert result.renditions == () and result.preview is not None and result.preview.size[0] > result.preview.size[1]
