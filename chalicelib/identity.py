"""Who is calling: the identity API Gateway's Cognito authorizer vouches for
(`WRITE_AUTH=cognito`), read from the request context's claims. No JWT is verified here:
API Gateway has verified it before the function runs; without a Cognito authorizer on the
route there are no claims and the caller is anonymous."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.settings import Settings

_GROUP_SEPARATORS = re.compile(r"[\s,]+")
UPLOADED_BY = "uploaded-by"  # the upload's S3 metadata (x-amz-meta-uploaded-by) naming its uploader


@dataclass(frozen=True)
class Caller:
    """A signed-in user: the pool's stable `sub`, the user name, and the groups."""

    sub: str
    username: str | None = None
    groups: frozenset[str] = frozenset()

    def in_group(self, group: str) -> bool:
        return group in self.groups


def caller_from(context: Mapping[str, Any] | None) -> Caller | None:
    """The caller of a request whose `requestContext` is `context`, or None (no Cognito claims)."""
    authorizer = (context or {}).get("authorizer") or {}
    claims = authorizer.get("claims") if isinstance(authorizer, Mapping) else None
    if not isinstance(claims, Mapping):
        return None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        return None
    username = claims.get("cognito:username") or claims.get("username")
    return Caller(sub=sub, username=str(username) if username else None, groups=_groups(claims.get("cognito:groups")))


def _groups(raw: object) -> frozenset[str]:
    """REST API Gateway passes `cognito:groups` as a string ("admins" or "[admins, editors]"
    depending on the integration), a JWT as a list: accept all three."""
    if isinstance(raw, list | tuple):
        return frozenset(str(g) for g in raw if g)
    if isinstance(raw, str):
        return frozenset(g for g in _GROUP_SEPARATORS.split(raw.strip().strip("[]")) if g)
    return frozenset()


def delete_refusal(settings: Settings, owner: str | None, caller: Caller | None) -> tuple[int, str, str] | None:
    """(status, code, message) refusing a DELETE, or None. With WRITE_AUTH=cognito a user
    deletes only their own uploads; members of COGNITO_ADMIN_GROUP delete any (also uploads
    that did not come through a form, which have no owner)."""
    if settings.write_auth != "cognito":
        return None
    if caller is None:
        return 401, "unauthorized", "sign in to delete images"
    if caller.in_group(settings.admin_group) or (owner is not None and owner == caller.sub):
        return None
    return 403, "forbidden", "you can delete only images you uploaded"
