"""Evaluate an IAM policy document the way the least-privilege tests need: Allow statements
only, actions matched exactly, resources by IAM's `*`/`?` wildcards."""

from __future__ import annotations

import fnmatch
from typing import Any


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] == "Allow" and action in actions and any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return True
    return False
