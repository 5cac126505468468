"""The adapters every use case needs, wired once per process by chalicelib.wiring (for app.py
and the reprocess command) or by a test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.catalog import Catalog
from chalicelib.imaging import codec
from chalicelib.notify import Notifier
from chalicelib.presets import Profile
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStore


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """A time as the catalog and the events write it (the API's DELETE too)."""
    return moment.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Adapters:
    settings: Settings
    profile: Profile
    store: ObjectStore
    catalog: Catalog
    notifier: Notifier
    clock: Callable[[], datetime] = utc_now

    @property
    def limits(self) -> codec.DecodeLimits:
        return codec.DecodeLimits.from_settings(self.settings)  # pixels, frames, animation budget, ANIMATION

    def now(self) -> str:
        """The clock as the catalog and the events write it."""
        return stamp(self.clock())
