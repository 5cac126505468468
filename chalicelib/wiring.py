"""Adapters for AWS, built from settings: shared by app.py and command-line tools."""

from __future__ import annotations

from chalicelib import aws, service
from chalicelib.catalog import DynamoCatalog
from chalicelib.notify import SnsNotifier
from chalicelib.presets import Profile, load_profile
from chalicelib.settings import Settings
from chalicelib.storage import S3ObjectStore


def aws_pipeline(settings: Settings, profile: Profile | None = None) -> service.Pipeline:
    return service.Pipeline(
        settings=settings,
        profile=profile or load_profile(settings.presets),
        store=S3ObjectStore(aws.client("s3", settings.region)),
        catalog=DynamoCatalog(aws.client("dynamodb", settings.region), settings.catalog_table),
        notifier=SnsNotifier(aws.client("sns", settings.region), aws.client("sts", settings.region), settings.region),
    )
