"""Near-duplicate index: the perceptual hash's bands as items in the catalog table.

Each band value is one item under a key no image id can take (image ids are 32 hex digits;
these start with `phash#`), holding a string set of the images that have that band value.
A member carries what the lookup needs to decide without reading the records: the time the
image was first catalogued (the earliest wins), its hash and its id. A lookup is one
BatchGetItem of `DUPLICATE_MAX_DISTANCE + 1` keys; candidates are confirmed by the full
Hamming distance. Band items have no `listing` or `status`, so the listing's sparse indexes
never see them, and a Scan never happens.

Scale: at the default distance (14: 15 bands of 4-5 bits) each band item lists about 1/16 of
the library at ~80 bytes a member, so DynamoDB's 400 KB item limit comes near 80,000 images.
Beyond that, a write to a full band fails (logged by the caller; the image is still processed
and found through its other bands); a larger library needs fewer, longer bands probed with
their near neighbours (multi-index hashing), or a smaller distance.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

BITS = 64  # a pHash: 16 hex digits
PREFIX = "phash#"
MEMBERS = "members"  # the string-set attribute of a band item
MAX_SIMILAR = 20  # GET /images/{id}/similar lists at most this many
_SEPARATOR = "|"
_BATCH_ROUNDS = 5  # BatchGetItem may leave keys unprocessed under throttling: retry a few times


@dataclass(frozen=True)
class Entry:
    """One image in the index."""

    image_id: str
    phash: str
    since: str  # created_at: when the image was first catalogued

    @property
    def member(self) -> str:
        return _SEPARATOR.join((self.since, self.phash, self.image_id))

    @classmethod
    def parse(cls, member: str) -> Entry | None:
        parts = member.split(_SEPARATOR)
        return cls(image_id=parts[2], since=parts[0], phash=parts[1]) if len(parts) == 3 else None


@dataclass(frozen=True)
class Match:
    entry: Entry
    distance: int


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def band_widths(max_distance: int, bits: int = BITS) -> list[int]:
    """Widths of the `max_distance + 1` bands the hash is cut into (as equal as possible)."""
    count = max(1, min(bits, max_distance + 1))
    return [bits // count + (1 if i < bits % count else 0) for i in range(count)]


def bands(hash_hex: str, max_distance: int) -> list[str]:
    """The hash's band values, each tagged with the layout and its position ("d8.3.5a").

    Pigeonhole: two hashes within `max_distance` bits differ in at most `max_distance` of
    the `max_distance + 1` bands, so they share at least one band value exactly. The layout
    tag keeps the keys of a different DUPLICATE_MAX_DISTANCE apart.
    """
    value, shift, out = int(hash_hex, 16), BITS, []
    for index, width in enumerate(band_widths(max_distance)):
        shift -= width
        out.append(f"d{max_distance}.{index}.{(value >> shift) & ((1 << width) - 1):x}")
    return out


def band_keys(phash: str, max_distance: int) -> list[str]:
    return [PREFIX + band for band in bands(phash, max_distance)]


def matches(entry: Entry, members: Iterable[str], max_distance: int) -> list[Match]:
    """Other images within `max_distance` bits, nearest first (then earliest, then by id)."""
    found: dict[str, Match] = {}
    for member in members:
        other = Entry.parse(member)
        if other is None or other.image_id == entry.image_id:
            continue
        distance = hamming(entry.phash, other.phash)
        if distance <= max_distance:
            found[other.image_id] = Match(other, distance)
    return sorted(found.values(), key=lambda m: (m.distance, m.entry.since, m.entry.image_id))


def original_of(entry: Entry, found: Sequence[Match]) -> str | None:
    """The earliest catalogued image among `found` if it came before `entry`, else None."""
    earlier = [m.entry for m in found if (m.entry.since, m.entry.image_id) < (entry.since, entry.image_id)]
    return min(earlier, key=lambda e: (e.since, e.image_id)).image_id if earlier else None


class BandIndex(Protocol):
    def band_members(self, keys: Sequence[str]) -> set[str]:
        """Every member of the band items `keys` (one read)."""
        ...

    def add_to_bands(self, keys: Sequence[str], member: str) -> None: ...
    def remove_from_bands(self, keys: Sequence[str], member: str) -> None: ...


class DynamoBandIndex:
    """Band items in the catalog table: BatchGetItem to read, atomic ADD/DELETE to write."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self.table = table

    def band_members(self, keys: Sequence[str]) -> set[str]:
        items = self.batch_get([{"image_id": {"S": key}} for key in dict.fromkeys(keys)], projection=MEMBERS)
        return {member for item in items for member in item.get(MEMBERS, {}).get("SS", [])}

    def batch_get(self, keys: list[dict[str, Any]], projection: str | None = None) -> list[dict[str, Any]]:
        """Items of up to 100 keys in one BatchGetItem (plus a retry of any it left unprocessed)."""
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        if projection:
            request[self.table] |= {"ProjectionExpression": "#p", "ExpressionAttributeNames": {"#p": projection}}
        for _ in range(_BATCH_ROUNDS):
            response = self._db.batch_get_item(RequestItems=request)
            found.extend(response.get("Responses", {}).get(self.table, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
        log.warning("%d items left unread after %d BatchGetItem rounds", len(request[self.table]["Keys"]), _BATCH_ROUNDS)
        return found

    def _update(self, action: str, keys: Sequence[str], member: str) -> None:
        def one(key: str) -> None:
            self._db.update_item(
                TableName=self.table,
                Key={"image_id": {"S": key}},
                UpdateExpression=f"{action} #m :m",
                ExpressionAttributeNames={"#m": MEMBERS},
                ExpressionAttributeValues={":m": {"SS": [member]}},
            )

        # One small write per band; side by side (boto3 clients are thread-safe), ~1 round trip in all.
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="bands") as pool:
            list(pool.map(one, keys))

    def add_to_bands(self, keys: Sequence[str], member: str) -> None:
        self._update("ADD", keys, member)

    def remove_from_bands(self, keys: Sequence[str], member: str) -> None:
        self._update("DELETE", keys, member)


class MemoryBandIndex:
    def __init__(self) -> None:
        self.bands: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def band_members(self, keys: Sequence[str]) -> set[str]:
        with self._lock:
            return {m for key in keys for m in self.bands.get(key, ())}

    def add_to_bands(self, keys: Sequence[str], member: str) -> None:
        with self._lock:
            for key in keys:
                self.bands.setdefault(key, set()).add(member)

    def remove_from_bands(self, keys: Sequence[str], member: str) -> None:
        with self._lock:
            for key in keys:
                self.bands.get(key, set()).discard(member)
                if not self.bands.get(key, True):
                    del self.bands[key]  # DynamoDB drops an emptied set too


class Indexed(Protocol):
    """What the index needs of a catalog record (chalicelib.records.ImageRecord)."""

    @property
    def image_id(self) -> str: ...
    @property
    def phash(self) -> str | None: ...
    @property
    def created_at(self) -> str | None: ...
    @property
    def status(self) -> str | None: ...


def entry_of(record: Indexed | None) -> Entry | None:
    """A record's place in the index: processed images with a hash only."""
    if record is None or record.status != "processed" or not record.phash or not record.created_at:
        return None
    return Entry(record.image_id, record.phash, record.created_at)


def reindex(index: BandIndex, before: Indexed | None, after: Indexed | None, max_distance: int) -> None:
    """Keep the index in step with a record that changed from `before` to `after` (either may
    be None: new, or deleted): the old entry out, the new one in, nothing when they agree."""
    old, new = entry_of(before), entry_of(after)
    if old == new:
        return
    if old is not None:
        unregister(index, old, max_distance)
    if new is not None:
        register(index, new, max_distance)


def forget(index: BandIndex, record: Indexed, max_distance: int) -> None:
    """Take a deleted record out of the index. The record is gone already, so a retry could not
    find it: a failure is logged (lookups then meet a stale member; GET /similar skips it)."""
    try:
        reindex(index, record, None, max_distance)
    except Exception:  # logged, with the traceback
        log.warning("could not remove %s from the near-duplicate index", record.image_id, exc_info=True)


def lookup(index: BandIndex, entry: Entry, max_distance: int) -> list[Match]:
    """Near-duplicates of `entry` from one read of its band items."""
    return matches(entry, index.band_members(band_keys(entry.phash, max_distance)), max_distance)


def register(index: BandIndex, entry: Entry, max_distance: int) -> None:
    index.add_to_bands(band_keys(entry.phash, max_distance), entry.member)


def unregister(index: BandIndex, entry: Entry, max_distance: int) -> None:
    index.remove_from_bands(band_keys(entry.phash, max_distance), entry.member)
