"""The caller API Gateway's Cognito authorizer vouches for, from the request context."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.identity import Caller, caller_from


@pytest.mark.parametrize("groups", ["admins", "[admins, editors]", "admins,editors", ["admins", "editors"]])
def test_groups_in_every_shape_api_gateway_passes_them(groups: Any) -> None:
    caller = caller_from({"authorizer": {"claims": {"sub": "s1", "cognito:username": "ann", "cognito:groups": groups}}})
    assert caller is not None and caller.sub == "s1" and caller.username == "ann" and caller.in_group("admins")
    assert not caller.in_group("admin")


@pytest.mark.parametrize(
    "context", [None, {}, {"authorizer": None}, {"authorizer": {"principalId": "x"}}, {"authorizer": {"claims": {"sub": ""}}}]
)
def test_no_claims_is_no_caller(context: Any) -> None:
    assert caller_from(context) is None


def test_a_caller_without_groups() -> None:
    assert caller_from({"authorizer": {"claims": {"sub": "s2"}}}) == Caller("s2")
