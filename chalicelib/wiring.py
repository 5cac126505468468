"""Adapters for AWS, built from settings: shared by app.py and command-line tools."""

from __future__ import annotations

from chalicelib import api, aws, service
from chalicelib.catalog import DynamoCatalog
from chalicelib.links import S3Links
from chalicelib.notify import SnsNotifier
from chalicelib.presets import Profile, load_profile
from chalicelib.probe import AwsProbe
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


def aws_api(settings: Settings, pipeline: service.Pipeline) -> api.Api:
    """The REST API's adapters: the pipeline's catalog and store, SigV4 presigning, health probes."""
    sns = aws.client("sns", settings.region)
    notifier = SnsNotifier(sns, aws.client("sts", settings.region), settings.region)
    probe = AwsProbe(aws.client("s3", settings.region), aws.client("dynamodb", settings.region), sns, notifier.topic_arn)
    links = S3Links(aws.s3_presigner(settings.region))
    return api.Api(settings, pipeline.profile, pipeline.catalog, pipeline.store, links, probe)
