"""The one place that reads the environment: a frozen, validated `Settings`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_SOURCE_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_SOURCE_PIXELS = 50_000_000
DEFAULT_MAX_FRAMES = 1000
# frames x width x height of an animation kept moving: 400 MP is 100 frames of 2000x2000, or
# 1000 of 632x632 (peak memory stays a few canvases: frames are streamed, see imaging/animation.py)
DEFAULT_MAX_ANIMATION_PIXELS = 400_000_000
ANIMATION_MODES = ("keep", "still")
# Pixel-scans a JPEG may cost to decode: 50 MP x 30 scans. Every camera photo is 1 scan, a
# progressive one from libjpeg/mozjpeg about 10; a 49 MP file in 256 scans (16 s of CPU) is not.
DEFAULT_MAX_DECODE_WORK = 1_500_000_000
DEFAULT_DEADLINE_MARGIN_MS = 10_000  # time kept back from Lambda's limit to record an unfinished image
DEFAULT_PRESIGN_EXPIRY = 120  # an upload form is single-use; a short life bounds what a leaked one can do
MAX_PRESIGN_EXPIRY = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer
AUTH_MODES = ("none", "api_key", "iam", "cognito")
# Stages whose reads are open unless READ_AUTH says otherwise: the local stack's. Any other
# stage (prod, or a STAGE that is not set) reads with an API key unless READ_AUTH=none opts in.
OPEN_READ_STAGES = ("dev", "local")
DEFAULT_ADMIN_GROUP = "admins"
_USER_POOL_ARN = re.compile(r"arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/[\w-]+_[0-9A-Za-z]+")
LOCAL_WORKER_KINDS = ("processes", "threads")
DEFAULT_REPROCESS_QUEUE = "image-pipeline-reprocess"
DUPLICATE_MODES = ("flag", "reject")
# Measured by bench/facts.py on the corpus (tests/unit/test_facts.py checks it): a photo and
# its variants (JPEG q50-q90, downscaled to 25-75%, 5% cropped) are at most 12 bits of pHash
# apart, two different photos at least 22. 14 sits 2 bits over the worst variant (a
# median-split hash moves in steps of 2) and 8 under the nearest different pair.
DEFAULT_DUPLICATE_MAX_DISTANCE = 14
MAX_DUPLICATE_DISTANCE = 24  # past this, unrelated photos match (and each band is 2 bits)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


@dataclass(frozen=True)
class Settings:
    upload_bucket: str
    processed_bucket: str
    catalog_table: str
    events_topic: str
    upload_prefix: str = "uploads/"
    output_prefix: str = "renditions/"
    alerts_topic_arn: str | None = None
    presets: str = "web"
    notify_on_success: bool = False
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES
    max_animation_pixels: int = DEFAULT_MAX_ANIMATION_PIXELS
    animation: str = "keep"  # keep: animated sources also get animated WebP renditions; still: first frame only
    max_decode_work: int = DEFAULT_MAX_DECODE_WORK
    deadline_margin_ms: int = DEFAULT_DEADLINE_MARGIN_MS
    max_workers: int = 0  # 0: derived from the CPUs available (see imaging.render)
    lambda_memory_mb: int = 0  # AWS_LAMBDA_FUNCTION_MEMORY_SIZE, set by Lambda (0 elsewhere)
    reprocess_queue: str = DEFAULT_REPROCESS_QUEUE  # SQS queue name the `reprocess` handler consumes
    region: str = "us-east-1"
    endpoint_url: str | None = None
    cdn_domain: str | None = None
    cdn_distribution_id: str | None = None  # CloudFront distribution to invalidate on DELETE
    write_auth: str = "none"
    read_auth: str = "none"
    stage: str = ""  # STAGE: the Chalice stage's name, set in its environment_variables
    cognito_user_pool_arn: str | None = None
    admin_group: str = DEFAULT_ADMIN_GROUP
    allow_anonymous_writes: bool = False
    presign_expiry: int = DEFAULT_PRESIGN_EXPIRY
    api_debug: bool = False
    duplicates: str = "flag"  # a near-duplicate is flagged (duplicate_of) or, with "reject", rejected
    duplicate_max_distance: int = DEFAULT_DUPLICATE_MAX_DISTANCE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stage = env.get("STAGE", "").strip()
        endpoint_url = env.get("AWS_ENDPOINT_URL") or None
        open_reads = endpoint_url is not None or stage in OPEN_READ_STAGES
        settings = cls(
            upload_bucket=_required(env, "UPLOAD_BUCKET"),
            processed_bucket=_required(env, "PROCESSED_BUCKET"),
            catalog_table=_required(env, "CATALOG_TABLE"),
            events_topic=_required(env, "EVENTS_TOPIC"),
            upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"),
            output_prefix=_prefix(env, "OUTPUT_PREFIX", "renditions/"),
            alerts_topic_arn=env.get("ALERTS_TOPIC_ARN") or None,
            presets=env.get("PRESETS", "").strip() or "web",
            notify_on_success=_bool(env, "NOTIFY_ON_SUCCESS", False),
            max_source_bytes=_positive_int(env, "MAX_SOURCE_BYTES", DEFAULT_MAX_SOURCE_BYTES),
            max_source_pixels=_positive_int(env, "MAX_SOURCE_PIXELS", DEFAULT_MAX_SOURCE_PIXELS),
            max_frames=_positive_int(env, "MAX_FRAMES", DEFAULT_MAX_FRAMES),
            max_animation_pixels=_positive_int(env, "MAX_ANIMATION_PIXELS", DEFAULT_MAX_ANIMATION_PIXELS),
            animation=_choice(env, "ANIMATION", ANIMATION_MODES, "keep"),
            max_decode_work=_positive_int(env, "MAX_DECODE_WORK", DEFAULT_MAX_DECODE_WORK),
            deadline_margin_ms=_positive_int(env, "DEADLINE_MARGIN_MS", DEFAULT_DEADLINE_MARGIN_MS),
            max_workers=_positive_int(env, "MAX_WORKERS", 0, allow_zero=True),
            lambda_memory_mb=_positive_int(env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, allow_zero=True),
            reprocess_queue=_queue_name(env, "REPROCESS_QUEUE", DEFAULT_REPROCESS_QUEUE),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=endpoint_url,
            cdn_domain=_cdn_domain(env),
            cdn_distribution_id=_distribution_id(env),
            write_auth=_choice(env, "WRITE_AUTH", AUTH_MODES, "none"),
            read_auth=_choice(env, "READ_AUTH", AUTH_MODES, "none" if open_reads else "api_key"),
            stage=stage,
            cognito_user_pool_arn=env.get("COGNITO_USER_POOL_ARN", "").strip() or None,
            admin_group=env.get("COGNITO_ADMIN_GROUP", "").strip() or DEFAULT_ADMIN_GROUP,
            allow_anonymous_writes=_bool(env, "ALLOW_ANONYMOUS_WRITES", False),
            presign_expiry=_positive_int(env, "PRESIGN_EXPIRY_SECONDS", DEFAULT_PRESIGN_EXPIRY),
            api_debug=_bool(env, "API_DEBUG", False),
            duplicates=_choice(env, "DUPLICATES", DUPLICATE_MODES, "flag"),
            duplicate_max_distance=_positive_int(env, "DUPLICATE_MAX_DISTANCE", DEFAULT_DUPLICATE_MAX_DISTANCE, allow_zero=True),
        )
        if settings.duplicate_max_distance > MAX_DUPLICATE_DISTANCE:
            raise SettingsError(f"DUPLICATE_MAX_DISTANCE={settings.duplicate_max_distance} exceeds {MAX_DUPLICATE_DISTANCE} bits of 64")
        if settings.presign_expiry > MAX_PRESIGN_EXPIRY:
            raise SettingsError(f"PRESIGN_EXPIRY_SECONDS={settings.presign_expiry} exceeds {MAX_PRESIGN_EXPIRY} (7 days, the SigV4 limit)")
        if settings.api_debug and not settings.endpoint_url:
            # Debug mode sends tracebacks to clients: only against a local emulator.
            raise SettingsError("API_DEBUG=true is only allowed with AWS_ENDPOINT_URL set (the local stack)")
        _check_cognito(settings)
        if settings.upload_bucket == settings.processed_bucket:
            # Renditions written to the upload bucket would trigger the processor again.
            raise SettingsError(
                "PROCESSED_BUCKET must differ from UPLOAD_BUCKET "
                f"(both are {settings.upload_bucket!r}): writing renditions into the "
                "upload bucket would invoke the processor on its own output forever"
            )
        return settings

    @classmethod
    def for_stage(cls, stage: str, config: Path = Path(".chalice/config.json")) -> Settings:
        """Settings of a Chalice stage (its `environment_variables`), the process environment
        winning: how command-line tools such as `python -m tools.reprocess` find the names."""
        try:
            stages = json.loads(config.read_text())["stages"]
        except (OSError, ValueError, KeyError) as exc:
            raise SettingsError(f"cannot read stages from {config}: {exc}") from None
        if stage not in stages:
            raise SettingsError(f"stage {stage!r} is not in {config} (have: {', '.join(sorted(stages))})")
        stage_env = {k: str(v) for k, v in stages[stage].get("environment_variables", {}).items()}
        return cls.from_env({**stage_env, **os.environ})

    def refuse_anonymous_writes(self) -> None:
        """SettingsError when the write routes would be open outside the local stack (the app
        calls this at import, so such a stage fails at deploy and cold start) unless
        ALLOW_ANONYMOUS_WRITES=true says it is meant."""
        if self.write_auth == "none" and self.endpoint_url is None and not self.allow_anonymous_writes:
            raise SettingsError(
                "WRITE_AUTH=none lets anyone upload and delete: outside the local stack set WRITE_AUTH "
                "(api_key, iam or cognito), or ALLOW_ANONYMOUS_WRITES=true if open writes are meant"
            )

    def public_view(self) -> dict[str, object]:
        """The settings in force, safe to show to a client (no secrets are ever held here)."""
        return {
            "upload_bucket": self.upload_bucket,
            "upload_prefix": self.upload_prefix,
            "processed_bucket": self.processed_bucket,
            "output_prefix": self.output_prefix,
            "catalog_table": self.catalog_table,
            "events_topic": self.events_topic,
            "alerts_topic_arn": self.alerts_topic_arn,
            "presets": self.presets,
            "notify_on_success": self.notify_on_success,
            "max_source_bytes": self.max_source_bytes,
            "max_source_pixels": self.max_source_pixels,
            "max_frames": self.max_frames,
            "max_animation_pixels": self.max_animation_pixels,
            "animation": self.animation,
            "max_decode_work": self.max_decode_work,
            "reprocess_queue": self.reprocess_queue,
            "region": self.region,
            "cdn_domain": self.cdn_domain,
            "cdn_invalidation": self.cdn_distribution_id is not None,
            "write_auth": self.write_auth,
            "read_auth": self.read_auth,
            "stage": self.stage,
            "presign_expiry_seconds": self.presign_expiry,
            "local_endpoint": self.endpoint_url is not None,
            "duplicates": self.duplicates,
            "duplicate_max_distance": self.duplicate_max_distance,
        }


# Pipeline settings a developer may override for `make run` without editing the stage config.
LOCAL_OVERRIDABLE = (
    "PRESETS",
    "NOTIFY_ON_SUCCESS",
    "MAX_SOURCE_BYTES",
    "MAX_SOURCE_PIXELS",
    "MAX_FRAMES",
    "MAX_ANIMATION_PIXELS",
    "ANIMATION",
    "MAX_DECODE_WORK",
    "MAX_WORKERS",
    "DUPLICATES",
    "DUPLICATE_MAX_DISTANCE",
)


@dataclass(frozen=True)
class LocalSettings:
    """Options of the local stack (`make run`, `python -m devstack`); Lambda never
    reads these. Ports may be 0: the stack then picks free ones and prints them."""

    aws_port: int = 5000
    api_port: int = 8000
    inbox: Path = Path("inbox")
    outbox: Path = Path("outbox")
    stage: str = "dev"
    log_dir: Path = Path(".local")
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)  # images at once (Lambda: one container each)
    workers: str = "processes"  # where the upload handler runs: worker processes, or threads of the stack
    verbose: bool = False  # echo the functions' JSON log lines on the console too
    overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalSettings:
        env = os.environ if env is None else env
        return cls(
            aws_port=_port(env, "LOCAL_AWS_PORT", 5000),
            api_port=_port(env, "LOCAL_API_PORT", 8000),
            inbox=Path(env.get("INBOX", "").strip() or "inbox"),
            outbox=Path(env.get("OUTBOX", "").strip() or "outbox"),
            stage=env.get("STAGE", "").strip() or "dev",
            log_dir=Path(env.get("LOCAL_LOG_DIR", "").strip() or ".local"),
            concurrency=_positive_int(env, "LOCAL_CONCURRENCY", os.cpu_count() or 1),
            workers=_choice(env, "LOCAL_WORKERS", LOCAL_WORKER_KINDS, "processes"),
            verbose=_bool(env, "LOCAL_VERBOSE", False),
            overrides={name: env[name] for name in LOCAL_OVERRIDABLE if env.get(name, "").strip()},
        )

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = _positive_int(env, name, default, allow_zero=True)
    if value > 65535:
        raise SettingsError(f"{name}={value} is not a TCP port (0-65535)")
    return value


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required and is not set")
    return value


def _prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if value.startswith("/"):
        raise SettingsError(f"{name}={value!r}: S3 key prefixes must not start with '/'")
    if value and not value.endswith("/"):
        value += "/"
    return value


def _queue_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    # SQS queue names: 1-80 characters, alphanumerics, hyphens and underscores (a name, not a URL).
    if len(value) > 80 or not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in value):
        raise SettingsError(f"{name}={value!r} is not an SQS queue name (1-80 of A-Z a-z 0-9 - _)")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use true or false)")


def _positive_int(env: Mapping[str, str], name: str, default: int, *, allow_zero: bool = False) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise SettingsError(f"{name}={raw!r} must be {'>= 0' if allow_zero else '> 0'}")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(allowed)}")
    return value


def _check_cognito(settings: Settings) -> None:
    uses_cognito = "cognito" in (settings.write_auth, settings.read_auth)
    arn = settings.cognito_user_pool_arn
    if uses_cognito and not arn:
        raise SettingsError("COGNITO_USER_POOL_ARN is required with WRITE_AUTH=cognito or READ_AUTH=cognito")
    if arn and not _USER_POOL_ARN.fullmatch(arn):
        raise SettingsError(f"COGNITO_USER_POOL_ARN={arn!r} is not a user pool ARN (arn:aws:cognito-idp:<region>:<account>:userpool/<id>)")


def _cdn_domain(env: Mapping[str, str]) -> str | None:
    """A bare host name (`d111.cloudfront.net`, `img.example.com`); a scheme or slash is stripped."""
    raw = env.get("CDN_DOMAIN", "").strip()
    host = raw.removeprefix("https://").removeprefix("http://").strip("/")
    if not host:
        return None
    if "/" in host or any(ch.isspace() for ch in host):
        raise SettingsError(f"CDN_DOMAIN={raw!r} must be a host name such as d111111abcdef8.cloudfront.net")
    return host


def _distribution_id(env: Mapping[str, str]) -> str | None:
    """A CloudFront distribution id (`E2QWRUHAPOMQZL`): upper-case letters and digits."""
    raw = env.get("CDN_DISTRIBUTION_ID", "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isalnum() and raw.isupper() and len(raw) <= 32):
        raise SettingsError(f"CDN_DISTRIBUTION_ID={raw!r} is not a CloudFront distribution id such as E2QWRUHAPOMQZL")
    return raw
