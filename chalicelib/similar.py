"""GET /images/{image_id}/similar: an image's near-duplicates, nearest first.

One read of the image's record, one BatchGetItem of its hash's band items (chalicelib/
duplicates.py) and one of the matching records: bounded, whatever the size of the catalog.
"""

from __future__ import annotations

from typing import Any

from chalicelib import duplicates
from chalicelib.api import Api, Reply, _existing, json_reply, summary_view
from chalicelib.models import Status


def similar_images(api: Api, image_id: str) -> Reply:
    """Processed images within DUPLICATE_MAX_DISTANCE bits of this one's pHash, nearest first
    (then earliest), at most MAX_SIMILAR, each as the listing shows it plus its `distance`."""
    record = _existing(api, image_id)
    distance = api.settings.duplicate_max_distance
    body: dict[str, Any] = {"image_id": image_id, "phash": record.phash, "max_distance": distance, "items": []}
    if not record.phash:
        return json_reply(body)  # not processed (or processed before image facts existed)
    entry = duplicates.Entry(record.image_id, record.phash, record.created_at or "")
    found = duplicates.lookup(api.catalog, entry, distance)[: duplicates.MAX_SIMILAR]
    records = {r.image_id: r for r in api.catalog.get_many([m.entry.image_id for m in found])}
    # A member whose record is gone or no longer processed is left out (the index lags a failed cleanup).
    body["items"] = [
        {**summary_view(api, records[m.entry.image_id]), "distance": m.distance}
        for m in found
        if m.entry.image_id in records and records[m.entry.image_id].status == Status.PROCESSED.value
    ]
    return json_reply(body)
