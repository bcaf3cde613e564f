"""A Ray cluster that refuses a connection for want of its token: one line saying what to set.

A head started on a machine that has ~/.ray/auth_token (any local Ray run leaves one) turns
token authentication on; clients must then set RAY_AUTH_MODE=token and hold the same token
(the file ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH, or RAY_AUTH_TOKEN).
"""
from __future__ import annotations

from ..errors import UserError

MARKERS = ("authentication token", "unauthenticated", "auth_mode")


def auth_hint(exc: BaseException, address: str | None) -> UserError | None:
    """A UserError for a connection refused on authentication; None for any other error."""
    if not any(_about_auth(e) for e in _chain(exc)):
        return None
    return UserError(f"the Ray cluster at {address} refused the connection (token "
                     f"authentication): set RAY_AUTH_MODE=token and give the head's token "
                     f"(~/.ray/auth_token on this machine, RAY_AUTH_TOKEN_PATH or "
                     f"RAY_AUTH_TOKEN); see cluster/README.md")


def _chain(exc: BaseException | None):
    """The error and its causes (ray.init wraps the GCS client's AuthenticationError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _about_auth(exc: BaseException) -> bool:
    from ray.exceptions import AuthenticationError

    return isinstance(exc, AuthenticationError) or any(m in str(exc).lower() for m in MARKERS)
