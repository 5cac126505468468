from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.presets import CLASSIC, WEB, PresetError, load_profile
from chalicelib.settings import Settings, SettingsError

BASE = {"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.upload_prefix == "uploads/"
    assert settings.presets == "web"
    assert settings.max_source_pixels == 50_000_000
    assert settings.alerts_topic_arn is None
    assert settings.notify_on_success is False


@pytest.mark.parametrize("missing", sorted(BASE))
def test_missing_required_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


def test_same_bucket_for_uploads_and_renditions_is_refused() -> None:
    with pytest.raises(SettingsError, match="PROCESSED_BUCKET must differ from UPLOAD_BUCKET"):
        Settings.from_env({**BASE, "PROCESSED_BUCKET": "up"})


@pytest.mark.parametrize(("name", "value"), [("MAX_SOURCE_BYTES", "lots"), ("MAX_SOURCE_PIXELS", "-1"), ("NOTIFY_ON_SUCCESS", "maybe")])
def test_invalid_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**BASE, name: value})


def test_prefix_gets_a_trailing_slash() -> None:
    assert Settings.from_env({**BASE, "UPLOAD_PREFIX": "incoming"}).upload_prefix == "incoming/"


def test_profiles() -> None:
    assert load_profile("web") is WEB
    assert load_profile("classic") is CLASSIC
    assert [p.name for p in WEB.presets] == [
        "thumbnail",
        *(f"w{w}_{fmt}" for w in (320, 1024, 2048) for fmt in ("jpeg", "webp", "avif")),
        "w320_animated",
        "w1024_animated",
    ]
    assert [p.output_filename("cat") for p in CLASSIC.presets] == [
        "cat_compressed.jpg",
        "cat_low_quality.jpg",
        "cat_converted.webp",
        "cat_converted.png",
        "cat_thumbnail.jpg",
    ]
    assert WEB.version != CLASSIC.version


def test_profile_from_json(tmp_path: Path) -> None:
    path = tmp_path / "shop.json"
    path.write_text(
        json.dumps(
            {"name": "shop", "presets": [{"name": "card", "format": "webp", "width": 600, "height": 400, "fit": "cover", "quality": 70}]}
        )
    )
    profile = load_profile(str(path))
    assert profile.name == "shop"
    assert profile.presets[0].format == "WEBP"
    assert profile.presets[0].output_filename("x") == "card.webp"


@pytest.mark.parametrize(
    "preset",
    [
        {"name": "a", "format": "gif"},
        {"name": "a", "format": "jpeg", "fit": "cover", "width": 10},
        {"name": "a", "format": "jpeg", "quality": 0},
        {"name": "a", "format": "jpeg", "colour": "red"},
        # Hand-written JSON: wrong types get the same typed error, never a TypeError.
        {"name": "a", "format": "jpeg", "width": "600"},
        {"name": "a", "format": "jpeg", "width": True},
        {"name": "a", "format": "jpeg", "quality": "80"},
        {"name": "a", "format": "jpeg", "always": "yes"},
        {"name": "a", "format": "jpeg", "options": ["progressive"]},
        {"name": 5, "format": "jpeg"},
        {"name": "a", "format": "jpeg", "filename": "{size}.jpg"},
        "thumbnail",
        17,
    ],
)
def test_invalid_presets(tmp_path: Path, preset: object) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([preset]))
    # The message names the file the user must fix.
    with pytest.raises(PresetError, match=f"PRESETS='{path}'"):
        load_profile(str(path))


def test_unknown_profile_name() -> None:
    with pytest.raises(PresetError, match="not a profile name"):
        load_profile("fancy")


@pytest.mark.parametrize("kind", ["folder", "binary"])
def test_an_unreadable_presets_file_is_a_preset_error(tmp_path: Path, kind: str) -> None:
    """PRESETS naming a folder or a non-text file: a PresetError naming it (what `make run`
    and the settings check report), not an IsADirectoryError/UnicodeDecodeError traceback."""
    path = tmp_path / "presets.json"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe\x00[\x80")
    with pytest.raises(PresetError, match=f"PRESETS='{path}': cannot read"):
        load_profile(str(path))
