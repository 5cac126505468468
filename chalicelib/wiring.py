"""Adapters for AWS, built from settings: shared by app.py and command-line tools."""

from __future__ import annotations

from functools import cache
from typing import Any

from chalicelib import api, aws
from chalicelib.adapters import Adapters
from chalicelib.catalog import DynamoCatalog
from chalicelib.cdn import CloudFrontCdn
from chalicelib.links import S3Links
from chalicelib.notify import SnsNotifier
from chalicelib.presets import Profile, load_profile
from chalicelib.probe import AwsProbe
from chalicelib.settings import Settings
from chalicelib.storage import S3ObjectStore


def aws_pipeline(settings: Settings, profile: Profile | None = None) -> Adapters:
    return Adapters(
        settings=settings,
        profile=profile or load_profile(settings.presets),
        store=S3ObjectStore(aws.client("s3", settings.region)),
        catalog=DynamoCatalog(aws.client("dynamodb", settings.region), settings.catalog_table),
        notifier=SnsNotifier(aws.client("sns", settings.region), aws.client("sts", settings.region), settings.region),
    )


def aws_api(settings: Settings, profile: Profile) -> api.Api:
    """The REST API's adapters. Only what a route uses is built: listing and reading need the
    DynamoDB client and the SigV4 presigner; SNS/STS clients exist only once /health asks."""
    region = settings.region

    def clients(name: str) -> Any:
        return aws.client(name, region)

    @cache
    def notifier() -> SnsNotifier:  # resolves topic names to ARNs (one STS call, then cached)
        return SnsNotifier(clients("sns"), clients("sts"), region)

    def topic_arn(topic: str) -> str:
        return notifier().topic_arn(topic)

    return api.Api(
        settings,
        profile,
        DynamoCatalog(clients("dynamodb"), settings.catalog_table),
        S3ObjectStore(clients("s3")),
        S3Links(aws.s3_presigner(region)),
        AwsProbe(clients, topic_arn),
        cdn=CloudFrontCdn(clients("cloudfront"), settings.cdn_distribution_id) if settings.cdn_distribution_id else None,
    )
