"""Small pure steps, image -> image. None of them mutates its input."""

from __future__ import annotations

import io
import math
from functools import lru_cache
from typing import cast

from PIL import Image, ImageCms, ImageOps

from chalicelib.imaging import smartcrop
from chalicelib.models import CameraSummary

LANCZOS = Image.Resampling.LANCZOS
WHITE = (255, 255, 255)
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION, _EXIF_MAKE, _EXIF_MODEL, _EXIF_DATETIME = 0x0112, 0x010F, 0x0110, 0x0132
_EXIF_IFD, _EXIF_DATETIME_ORIGINAL = 0x8769, 0x9003


# --- reading facts (no pixels touched) -------------------------------------------------


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation still to apply (1 = none)."""
    if image.format == "TIFF":
        # Pillow applies a TIFF's own Orientation tag itself: `size` is already the upright
        # size and load() transposes the pixels. Applying it again rotated TIFFs twice.
        return 1
    if image.format == "HEIF":
        # libheif applies the container's irot/imir while decoding; the EXIF tag describes the
        # stored pixels, so applying it too would turn a phone photo twice.
        return 1
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - broken EXIF must never reject a good photo
        return 1


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as a viewer shows them, after EXIF orientation."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in _TRANSPOSED_ORIENTATIONS else (width, height)


def camera_summary(image: Image.Image) -> CameraSummary:
    """Make, model and capture time only: GPS and serial numbers are never read out."""
    try:
        exif = image.getexif()
        taken = exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL) or exif.get(_EXIF_DATETIME)
        return CameraSummary(make=_text(exif.get(_EXIF_MAKE)), model=_text(exif.get(_EXIF_MODEL)), taken_at=_exif_time(taken))
    except Exception:  # noqa: BLE001 - metadata is a courtesy, not a reason to fail
        return CameraSummary()


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    return cleaned[:128] or None


def _exif_time(value: object) -> str | None:
    text = _text(value)
    if not text or len(text) < 19 or text.startswith("0000"):
        return None
    # EXIF writes "YYYY:MM:DD HH:MM:SS" in camera-local time with no zone.
    return f"{text[0:4]}-{text[5:7]}-{text[8:10]}T{text[11:19]}"


# --- pixel steps ------------------------------------------------------------------------


_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    """Make an image upright given its EXIF orientation (read before any resize).

    ImageOps.exif_transpose's table, applied to a resized
    copy: transposing a 2048 px rendition costs ~5 ms, the full photo ~35 ms.
    """
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def to_srgb(image: Image.Image) -> Image.Image:
    """Convert to sRGB using the embedded ICC profile (CMYK, Adobe RGB, Display P3, ...).

    Results are RGB, RGBA or L. A plain convert('RGB') is used only when there is no
    usable profile; for CMYK that is a known approximation (documented).
    """
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("P", "PA"):
        # A palette's colours are in the profile's space too: expand first, then convert
        # (a Display P3 palette PNG came out with its colours read as sRGB).
        image = normalize_mode(image)
    if icc and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        converted = _apply_icc(image, bytes(icc))
        if converted is not None:
            return converted
    return normalize_mode(image)


def _apply_icc(image: Image.Image, icc: bytes) -> Image.Image | None:
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    base = image.convert("RGB") if alpha is not None else image
    if base.mode == "RGB" and _is_srgb(icc):
        out = base.copy() if alpha is not None else base  # already sRGB: skip a full-image pass
    else:
        transform = _srgb_transform(icc, base.mode)
        if transform is None:
            return None
        out = ImageCms.applyTransform(base, transform) or base
    if alpha is not None:
        out.putalpha(alpha)
    return out


@lru_cache(maxsize=32)
def _is_srgb(icc: bytes) -> bool:
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))) or ""
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False
    return description.strip().lower().startswith("srgb")


@lru_cache(maxsize=32)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Building a transform costs ~10 ms; photos from one camera share one profile."""
    if mode not in ("RGB", "CMYK"):
        return None  # grey profiles differ from sRGB by a gamma tweak at most: keep the pixels
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.buildTransform(profile, _SRGB, mode, "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


_SRGB = ImageCms.createProfile("sRGB")


def normalize_mode(image: Image.Image) -> Image.Image:
    """Bring any decoded mode to one of RGB, RGBA or L, scaling (not clipping) deep pixels."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L"):
        return image
    if mode.startswith("I;16") or mode == "I":
        return _scale_deep(image.convert("I") if mode != "I" else image)
    if mode == "F":
        low, high = _extrema(image)
        span = (high - low) or 1.0
        return image.point(lambda v: (v - low) * (255.0 / span)).convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "La", "RGBa", "RGBX"):
        return image.convert("RGBA" if mode != "RGBX" else "RGB")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # CMYK without a profile, YCbCr, LAB, HSV


def _extrema(image: Image.Image) -> tuple[float, float]:
    low, high = cast(tuple[float, float], image.getextrema())
    return low, high


def _scale_deep(image: Image.Image) -> Image.Image:
    low, high = _extrema(image)
    if high <= 255 and low >= 0:
        return image.convert("L")
    # 16-bit data: map 0..65535 to 0..255 (keeps tones; convert() would clip to white).
    scale = 255.0 / 65535.0 if high <= 65535 and low >= 0 else 255.0 / max(high - low, 1)
    offset = 0.0 if high <= 65535 and low >= 0 else -low * scale
    # point() on mode I applies scale/offset in 32-bit; the result then fits L exactly.
    return image.point(lambda v: v * scale + offset).convert("L")


def flatten(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Composite alpha onto a solid background (for formats without alpha, e.g. JPEG)."""
    if image.mode != "RGBA":
        return image
    canvas = Image.new("RGB", image.size, background)
    canvas.paste(image, mask=image.getchannel("A"))
    return canvas


# Box-reduce by an integer factor first while the image stays 3x the target: fast, and
# Pillow's docs call the result indistinguishable from a plain Lanczos resize.
REDUCING_GAP = 3.0
Box = tuple[float, float, float, float]


def pre_reduce(image: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, Box]:
    """The integer box reduction done before the final resample, and the box (in the reduced
    image's pixels) that resample must read, exactly as Pillow's `reducing_gap` does it.

    Levers measured and not taken (both fail the quality bar of test_real_photos_web_profile):
    box-halving 2x-3x reductions as libvips does (2048 -> 1024 px: 56 -> 16 ms, -0.4 dB), and
    bicubic under 2x (first resize of a 12 MP photo: 140 -> 100 ms, up to -0.2 dB).
    """
    factor_x = max(1, int(image.size[0] / size[0] / REDUCING_GAP))
    factor_y = max(1, int(image.size[1] / size[1] / REDUCING_GAP))
    if factor_x == 1 and factor_y == 1:
        return image, (0, 0, image.size[0], image.size[1])
    box = (0, 0, image.size[0] / factor_x, image.size[1] / factor_y)
    return image.reduce((factor_x, factor_y)), box


def resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Lanczos throughout: see pre_reduce for the cheaper choices measured.
    if image.size == size:
        return image
    reduced, box = pre_reduce(image, size)
    return reduced.resize(size, LANCZOS, box=box)


def cover(image: Image.Image, size: tuple[int, int], crop: str = "centre") -> Image.Image:
    """Fill `size` exactly, cropping the centre (ImageOps.fit), or with `crop="smart"` the
    window with the most detail, colour and skin (smartcrop.py).

    When one side already fits (the image was scaled to `cover_scaled`), only a crop is left:
    it is done at whole pixels. ImageOps.fit would resample at a half-pixel offset (37.5 px
    off a 225 px side) and blur the thumbnail: 2 dB PSNR lost on a 16 MP photo.
    """
    if image.size == size:
        return image
    centre = smartcrop.centering(image, size) if crop == "smart" else (0.5, 0.5)
    width, height = image.size
    if (width == size[0] and height >= size[1]) or (height == size[1] and width >= size[0]):
        left, top = int((width - size[0]) * centre[0]), int((height - size[1]) * centre[1])
        return image.crop((left, top, left + size[0], top + size[1]))
    return ImageOps.fit(image, size, LANCZOS, centering=centre)


# --- geometry ---------------------------------------------------------------------------


def fit_within(source: tuple[int, int], box: tuple[int | None, int | None]) -> tuple[int, int]:
    """Largest size with the source's aspect inside `box` (None = unbounded), never larger."""
    width, height = source
    box_w, box_h = box
    scale = 1.0
    if box_w is not None:
        scale = min(scale, box_w / width)
    if box_h is not None:
        scale = min(scale, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def cover_box(source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The crop box a cover fit produces; shrunk (same aspect) when the source is smaller."""
    width, height = source
    box_w, box_h = box
    shrink = min(1.0, width / box_w, height / box_h)
    return max(1, math.floor(box_w * shrink)), max(1, math.floor(box_h * shrink))


def cover_scaled(source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """Size the source is scaled to before a cover crop to `box`."""
    width, height = source
    scale = max(box[0] / width, box[1] / height)
    return max(box[0], math.ceil(width * scale)), max(box[1], math.ceil(height * scale))
