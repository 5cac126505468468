"""No output key escapes its prefix, whatever the source key (property-based)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import keys
from chalicelib.presets import CLASSIC, WEB
from chalicelib.settings import Settings

SETTINGS = Settings.from_env({"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev"})
MAX_FILE_NAME = max(len(p.output_filename("s" * 120).encode()) for p in (*WEB.presets, *CLASSIC.presets))

segment = st.one_of(
    st.sampled_from(["..", ".", "", "_by-id", "a b", "a+b", "%2e%2e", "%00", "\\", "~", "con", "写真", "🙂", "\t", "\n", "\x7f"]),
    st.text(min_size=1, max_size=40),
)
source_keys = (
    st.lists(segment, min_size=1, max_size=30).map(lambda parts: "uploads/" + "/".join(parts)).filter(lambda k: len(k.encode()) <= 1024)
)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(first=source_keys, second=source_keys)
def test_output_folders_stay_under_the_prefix_fit_and_never_collide(first: str, second: str) -> None:
    for key in (first, second):
        folder = keys.output_folder(SETTINGS, key, keys.rendition_version("v" * 32, "e" * 32, "p" * 16))
        assert folder.startswith("renditions/") and folder.endswith("/")
        relative = folder.removeprefix("renditions/")
        assert all(part not in ("", ".", "..") for part in relative[:-1].split("/")), folder
        assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in folder)
        assert len(folder.encode()) + MAX_FILE_NAME <= 1024
    if first != second:
        assert keys.source_folder(SETTINGS, first) != keys.source_folder(SETTINGS, second)


def test_file_names_come_from_presets_not_from_the_key() -> None:
    stem = keys.source_stem("uploads/evil/..%2F..%2Fx/../../name.with.dots.jpg")
    for preset in (*WEB.presets, *CLASSIC.presets):
        assert "/" not in preset.output_filename(stem)


def test_a_new_source_version_or_profile_gets_a_new_version_folder() -> None:
    base = keys.rendition_version("3HL4kqtJlcpXroDTDmJ", "e1", "p1")
    assert keys.rendition_version("3HL4kqtJlcpXroDTDmJ", "e1", "p1") == base  # deterministic
    assert keys.rendition_version("4HL4kqtJlcpXroDTDmK", "e1", "p1") != base  # re-upload, same bytes
    assert keys.rendition_version("3HL4kqtJlcpXroDTDmJ", "e1", "p2") != base  # new presets
    # Unversioned buckets: the ETag decides (S3 reports version id "null")
    assert keys.rendition_version("null", "e1", "p1") == keys.rendition_version(None, "e1", "p1")
    assert keys.rendition_version(None, "e1", "p1") != keys.rendition_version(None, "e2", "p1")
