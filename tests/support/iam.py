"""Evaluate an IAM policy document the way the least-privilege tests need: Allow statements
only, actions matched exactly, resources by IAM's `*`/`?` wildcards, and the one condition
key the policies narrow DynamoDB writes with, `dynamodb:LeadingKeys` (ForAllValues:StringLike),
against the partition keys a call touches. Other conditions (s3:ResourceAccount) are checked
by deploy/policy.py's rendering, not here."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

LEADING_KEYS = "dynamodb:LeadingKeys"


def allows(policy: dict[str, Any], action: str, resource: str, leading_keys: Sequence[str] = ()) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        matches = statement["Effect"] == "Allow" and action in actions and any(fnmatch.fnmatchcase(resource, r) for r in resources)
        if matches and keys_allowed(statement.get("Condition", {}), leading_keys):
            return True
    return False


def keys_allowed(condition: dict[str, Any], leading_keys: Sequence[str]) -> bool:
    patterns = condition.get("ForAllValues:StringLike", {}).get(LEADING_KEYS)
    if patterns is None:
        return True
    listed = patterns if isinstance(patterns, list) else [patterns]
    # a call that names no key (none recorded) cannot be shown to stay inside the condition
    return bool(leading_keys) and all(any(fnmatch.fnmatchcase(k, p) for p in listed) for k in leading_keys)
