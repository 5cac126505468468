"""The things the benchmark times, each a function of the source bytes.

- `ours_*`: this project's pure rendering step (chalicelib.imaging.render).
- `naive_classic`: the older scripts' code, kept here as the reference: open, save full-size
  JPEG q85, JPEG q50, WebP, PNG, and a 150x150 thumbnail, all with Pillow's defaults.
- `vips_web`: the same web renditions with libvips (pyvips), same sizes, formats (JPEG, WebP,
  AVIF through heifsave), quality and effort.
- `decode_floor`: a full JPEG decode and nothing else, the floor any pipeline pays.
- `Handler`: the whole process_upload Lambda handler under moto.mock_aws.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from chalicelib.imaging import codec, render, steps
from chalicelib.presets import CLASSIC, WEB, Preset, Profile

ROOT = Path(__file__).resolve().parents[1]
LIMITS = codec.DecodeLimits(max_pixels=50_000_000, max_frames=1000)


# --- ours -------------------------------------------------------------------------------


def ours(data: bytes, profile: str, threads: int) -> dict[str, bytes]:
    result = render.render(data, {"web": WEB, "classic": CLASSIC}[profile], LIMITS, "photo", workers=threads)
    return {r.preset: r.data for r in result.renditions}


# --- the older scripts' code (reference) --------------------------------------------------


def naive_classic(data: bytes) -> dict[str, bytes]:
    """What the scripts did before this project: every save from the opened image, Pillow
    defaults (WebP method 4, PNG compress_level 6), no orientation, no colour management."""
    image = Image.open(io.BytesIO(data))
    outputs: dict[str, bytes] = {}
    for name, fmt, options in (
        ("compressed", "JPEG", {"quality": 85}),
        ("low_quality", "JPEG", {"quality": 50}),
        ("converted_webp", "WEBP", {}),
        ("converted_png", "PNG", {}),
    ):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        outputs[name] = buffer.getvalue()
    thumb = image.copy()
    thumb.thumbnail((150, 150))
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG")
    outputs["thumbnail"] = buffer.getvalue()
    return outputs


# --- libvips --------------------------------------------------------------------------------


def _vips_save_options(preset: Preset) -> tuple[str, dict[str, Any]]:
    """Our preset's encoder settings spelled the libvips way (same quality and effort)."""
    options = dict(preset.options)
    if preset.format == "JPEG":
        return "jpegsave_buffer", {
            "Q": preset.quality,
            "optimize_coding": bool(options.get("optimize")),
            "interlace": bool(options.get("progressive")),
            "keep": "none",
        }
    if preset.format == "AVIF":
        # libvips' heifsave effort is 9 - aom's speed (cpu-used): Pillow's speed 8 is effort 1.
        speed = int(options.get("speed", 6))
        return "heifsave_buffer", {"Q": preset.quality, "compression": "av1", "effort": 9 - speed, "keep": "none"}
    return "webpsave_buffer", {"Q": preset.quality, "effort": int(options.get("method", 4)), "keep": "none"}


def vips_web(data: bytes, threads: int, profile: Profile = WEB) -> dict[str, bytes]:
    """The web set with libvips' own best practice: thumbnail (shrink-on-load, auto-rotate,
    ICC import) to the largest width once, then each smaller width from the previous one
    (re-thumbnailing the source per width measured ~25% slower), 150x150 centre crop from the
    smallest of those at least twice its size.
    `threads` is VIPS_CONCURRENCY: libvips threads each operation internally."""
    import pyvips

    pyvips.concurrency_set(threads)
    header = pyvips.Image.new_from_buffer(data, "")
    orientation = header.get("orientation") if header.get_typeof("orientation") else 1
    display = (header.height, header.width) if orientation in (5, 6, 7, 8) else (header.width, header.height)
    plans, _, _ = render.plan(profile, display)  # the same renditions ours makes (no upscaling)
    # Each "within" box (width, or width x height); `profile` lets bench.top_width try other boxes.
    boxes = sorted({_box(p.preset) for p in plans if p.preset.fit == "within" and p.preset.width}, reverse=True)
    # Ours converts a non-sRGB embedded profile to sRGB and drops it; so must libvips, or its
    # outputs would show wrong colours once the profile is stripped (keep="none").
    icc = header.get("icc-profile-data") if header.get_typeof("icc-profile-data") else None
    colour = {"export_profile": "srgb"} if icc and not steps._is_srgb(bytes(icc)) else {}
    made: dict[tuple[int, int], Any] = {}
    source = None
    for width, height in boxes:
        if source is None:
            made[width, height] = pyvips.Image.thumbnail_buffer(data, width, height=height, size="down", **colour).copy_memory()
        else:
            made[width, height] = pyvips.Image.thumbnail_image(source, width, height=height, size="down").copy_memory()
        source = made[width, height]
    outputs: dict[str, bytes] = {}
    for item in plans:
        preset = item.preset
        if preset.fit == "cover":
            assert preset.width and preset.height and source is not None
            # From the smallest width at least twice the pre-crop size, as ours does.
            start = min((im for im in made.values() if im.width >= 2 * item.scaled[0]), key=lambda im: im.width, default=source)
            image = pyvips.Image.thumbnail_image(start, preset.width, height=preset.height, crop="centre")
        else:
            image = made[_box(preset)]
        method, options = _vips_save_options(preset)
        outputs[preset.name] = getattr(image, method)(**options)
    return outputs


def _box(preset: Preset) -> tuple[int, int]:
    assert preset.width
    return preset.width, preset.height or 10_000_000


def vips_available() -> str | None:
    try:
        import pyvips

        return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    except (ImportError, OSError):
        return None


# --- floor ------------------------------------------------------------------------------------


def decode_floor(data: bytes) -> None:
    image = Image.open(io.BytesIO(data))
    image.load()


# --- the whole handler under moto -----------------------------------------------------------------


class Handler:
    """process_upload as Lambda calls it, against moto's in-process S3/DynamoDB/SNS."""

    def __init__(self) -> None:
        from moto import mock_aws

        env = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
        os.environ.update(env)
        os.environ["ALLOW_ANONYMOUS_WRITES"] = "true"  # the dev stage's WRITE_AUTH=none, in-process only
        # moto accepts any credentials; these only keep botocore from looking for real ones.
        os.environ.update(
            {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
        )
        os.environ.pop("AWS_ENDPOINT_URL", None)
        os.environ.pop("AWS_PROFILE", None)
        self.env = env
        self._mock = mock_aws()
        self._mock.start()
        import app
        from chalicelib import aws

        aws.reset()
        self.app = app
        self.base_settings = app.settings
        s3 = aws.client("s3", "us-east-1")
        s3.create_bucket(Bucket=env["UPLOAD_BUCKET"])
        s3.create_bucket(Bucket=env["PROCESSED_BUCKET"])
        aws.client("dynamodb", "us-east-1").create_table(
            TableName=env["CATALOG_TABLE"],
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        aws.client("sns", "us-east-1").create_topic(Name=env["EVENTS_TOPIC"])
        self.s3 = s3
        self.uploaded: dict[str, str] = {}

    def run(self, data: bytes, name: str, threads: int) -> dict[str, bytes]:
        key = self.uploaded.get(name)
        if key is None:
            key = self.uploaded[name] = f"uploads/bench/{name}"
            self.s3.put_object(Bucket=self.env["UPLOAD_BUCKET"], Key=key, Body=data)
        if self.app.settings.max_workers != threads:
            self.app.settings = replace(self.base_settings, max_workers=threads)
            self.app.pipeline.cache_clear()
        event = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": self.env["UPLOAD_BUCKET"]}, "object": {"key": key, "size": len(data)}},
                }
            ]
        }
        self.app.process_upload(event, None)
        listing = self.s3.list_objects_v2(Bucket=self.env["PROCESSED_BUCKET"], Prefix=f"renditions/bench/{name}/")
        return {o["Key"]: b"" for o in listing.get("Contents", [])}

    def close(self) -> None:
        from chalicelib import aws

        self.app.settings = self.base_settings
        self.app.pipeline.cache_clear()
        aws.reset()
        self._mock.stop()
