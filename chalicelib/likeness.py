"""The image-facts step of processing: placeholder and perceptual hash from the renderer's
small copy, the earliest image this one nearly duplicates, and the near-duplicate index kept
in step with the record. Failures of the index cost the flag only (logged, never fatal)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from chalicelib import duplicates
from chalicelib.adapters import Adapters
from chalicelib.facts import Facts, compute_facts
from chalicelib.outcomes import best_effort
from chalicelib.records import ImageRecord


def facts_of(adapters: Adapters, image_id: str, previous: ImageRecord | None, preview: Image.Image) -> tuple[Facts, str | None]:
    """(the facts, the image this one nearly duplicates, if any), with one read of the index."""
    facts = compute_facts(preview)
    since = (previous.created_at if previous else None) or adapters.now()
    entry = duplicates.Entry(image_id, facts.phash, since)
    found: list[duplicates.Match] = []

    def look() -> None:
        found.extend(duplicates.lookup(adapters.catalog, entry, adapters.settings.duplicate_max_distance))

    best_effort(look, "look up near-duplicates")
    return facts, duplicates.original_of(entry, found)


def facts_fields(facts: Facts | None, duplicate_of: str | None) -> dict[str, Any]:
    """The record's and the event's facts fields (absent when unknown)."""
    if facts is None:
        return {}
    fields = {"placeholder": facts.placeholder.as_dict(), "phash": facts.phash}
    return fields | ({"duplicate_of": duplicate_of} if duplicate_of else {})


def reindex(adapters: Adapters, before: ImageRecord | None, after: ImageRecord | None) -> None:
    """The near-duplicate index follows the record; failing to update it is logged, not fatal
    (the image is then not found as an original through the bands that failed)."""
    distance = adapters.settings.duplicate_max_distance
    best_effort(lambda: duplicates.reindex(adapters.catalog, before, after, distance), "update the near-duplicate index")
