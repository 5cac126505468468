"""GET /health: a terse status for anyone (load balancers, uptime checks), and the settings
and each check's result only for an authorised caller (GET /health/details, behind the write
auth): a probe's error names buckets, tables and topics, and the settings name everything."""

from __future__ import annotations

from typing import Any

from chalicelib.api import Api, Reply


def checks(api: Api) -> dict[str, str | None]:
    """Each resource the pipeline needs: None when reachable, else the probe's reason."""
    settings = api.settings
    return {
        "upload_bucket": api.probe.bucket(settings.upload_bucket),
        "processed_bucket": api.probe.bucket(settings.processed_bucket),
        "catalog_table": api.probe.table(settings.catalog_table),
        "events_topic": api.probe.topic(settings.events_topic),
    }


def status(api: Api) -> Reply:
    """`{"status": "ok"}` (200) or `{"status": "degraded"}` (503), nothing else."""
    ok = all(error is None for error in checks(api).values())
    return Reply(200 if ok else 503, {"status": "ok" if ok else "degraded"})


def details(api: Api) -> Reply:
    results = checks(api)
    ok = all(error is None for error in results.values())
    body: dict[str, Any] = {
        "status": "ok" if ok else "degraded",
        "settings": api.settings.public_view(),
        "profile": {"name": api.profile.name, "version": api.profile.version, "presets": [p.name for p in api.profile.presets]},
        "checks": {name: {"ok": error is None, **({"error": error} if error else {})} for name, error in results.items()},
    }
    return Reply(200 if ok else 503, body)
