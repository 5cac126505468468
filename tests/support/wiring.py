"""Wiring the use cases to in-memory adapters: settings, a pipeline, an upload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib import service
from chalicelib.catalog import MemoryCatalog
from chalicelib.models import Upload
from chalicelib.notify import MemoryNotifier
from chalicelib.presets import WEB, Profile
from chalicelib.settings import Settings
from chalicelib.storage import MemoryObjectStore

SETTINGS = Settings.from_env({"UPLOAD_BUCKET": "up", "PROCESSED_BUCKET": "out", "CATALOG_TABLE": "t", "EVENTS_TOPIC": "ev"})


def make_pipeline(profile: Profile = WEB, settings: Settings = SETTINGS, **kw: Any) -> service.Pipeline:
    return service.Pipeline(
        settings=settings,
        profile=profile,
        store=kw.get("store", MemoryObjectStore()),
        catalog=kw.get("catalog", MemoryCatalog()),
        notifier=kw.get("notifier", MemoryNotifier()),
        clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def upload(p: service.Pipeline, key: str, data: bytes, sequencer: str = "0A") -> service.Outcome:
    assert isinstance(p.store, MemoryObjectStore)
    p.store.add("up", key, data)
    return service.process_upload(p, Upload("up", key, sequencer=sequencer))
