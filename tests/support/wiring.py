"""Wiring the use cases to in-memory adapters: settings, adapters, an upload, a stored record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib import keys, processing
from chalicelib.adapters import Adapters
from chalicelib.catalog import MemoryCatalog
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.outcomes import Outcome
from chalicelib.presets import WEB, Profile
from chalicelib.settings import Settings
from chalicelib.storage import MemoryObjectStore

SETTINGS = Settings.from_env({"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev"})


def make_pipeline(profile: Profile = WEB, settings: Settings = SETTINGS, **kw: Any) -> Adapters:
    return Adapters(
        settings=settings,
        profile=profile,
        store=kw.get("store", MemoryObjectStore()),
        catalog=kw.get("catalog", MemoryCatalog()),
        notifier=kw.get("notifier", MemoryNotifier()),
        clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def stored_record(p: Adapters, key: str) -> dict[str, Any] | None:
    """The catalog record of `key` in its stored form (what DynamoDB holds), if any."""
    record = p.catalog.get(keys.image_id_for(key))
    return record.to_dict() if record else None


def upload(p: Adapters, key: str, data: bytes, sequencer: str = "0A") -> Outcome:
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("up", key, data)
    return processing.handle_upload(p, Upload("up", key, sequencer=sequencer))
