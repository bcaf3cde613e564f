"""Credentials out of records and messages (pure functions).

A URL may carry secrets: userinfo (`https://user:pass@host/x`) and query parameters of
pre-signed or token URLs (`X-Amz-Signature`, `X-Amz-Credential`, `sig`, `token`, ...). Such a
URL is still what the readers open; what is written down (job.json, report.json, the dataset
card, messages) gets `redact_url` / `redact_text`: the secret parts become `***`, the rest
stays as written. Both are idempotent.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

MASK = "***"
# names (lowercase, '-' as '_', a cloud's x_amz_ / x_goog_ / x_ms_ prefix dropped) whose
# values are secrets, and name endings that are
SECRET_NAMES = frozenset({"sig", "key", "auth", "authorization", "pwd", "passwd", "pass",
                          "awsaccesskeyid", "apikey", "accesskey", "secretkey", "code"})
SECRET_ENDINGS = ("token", "secret", "password", "signature", "credential", "credentials",
                  "_key")
CLOUD_PREFIXES = ("x_amz_", "x_goog_", "x_ms_")

USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][\w+.-]*://)(?P<userinfo>[^/?#\s]*)@")
PARAM = re.compile(r"(?P<lead>^|[?&;#\s,(])(?P<name>[\w.%-]+)=(?P<value>[^&;#\s'\")]*)")
CONFIG_URL_FIELDS = {"spec": ("inputs",), "options": ("upload", "previous", "output", "address")}


def is_secret_name(name: str) -> bool:
    key = unquote(name).lower().replace("-", "_")
    for prefix in CLOUD_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key in SECRET_NAMES or key.endswith(SECRET_ENDINGS)


def _mask_param(match: re.Match) -> str:
    if not is_secret_name(match["name"]) or not match["value"] or match["value"].startswith(MASK):
        return match[0]                 # masked already: what follows is not the secret
    return f"{match['lead']}{match['name']}={MASK}"


def redact_text(text: str) -> str:
    """`text` with every URL's userinfo and every secret `name=value` value masked."""
    text = USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@" if m["userinfo"] else m[0], text)
    return PARAM.sub(_mask_param, text)


def redact_url(url: str) -> str:
    """`url` without its userinfo and the values of its secret query (or fragment)
    parameters; a local path comes back unchanged."""
    return redact_text(url) if "://" in url else url


def redact_config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of `JobConfig.to_dict()` with the URL-valued fields redacted, for job.json."""
    out = {part: dict(values) for part, values in config.items()}
    for part, names in CONFIG_URL_FIELDS.items():
        for name in names:
            value = out.get(part, {}).get(name)
            if isinstance(value, str):
                out[part][name] = redact_url(value)
            elif isinstance(value, (list, tuple)):
                out[part][name] = type(value)(redact_url(v) for v in value)
    return out


def redact_exception(exc: BaseException) -> BaseException:
    """`exc` (and the exceptions chained to it) with the credentials in their messages
    masked, in place: what any formatting of it prints (a traceback in a Ray worker, on
    the driver, in a log) holds no secret. Returns `exc`."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        try:
            exc.args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)
            for name in ("filename", "filename2", "strerror"):
                value = getattr(exc, name, None)
                if isinstance(value, str):
                    setattr(exc, name, redact_text(value))
        except (AttributeError, TypeError):      # an exception type with read-only fields
            pass
        exc = exc.__cause__ or exc.__context__
    return exc


class RedactedError(Exception):
    """An exception whose text held a secret outside its arguments (an HTTP client's error
    printing its request's URL), retold without it."""


@contextlib.contextmanager
def redacting() -> Iterator[None]:
    """Exceptions leaving the block have their messages redacted (`redact_exception`): a
    Ray task's entry, whose errors Ray formats and ships to the driver and its logs. One
    whose text still holds a secret is replaced by a RedactedError telling it masked."""
    try:
        yield
    except Exception as exc:
        redact_exception(exc)
        text = str(exc)
        if redact_text(text) != text:
            raise RedactedError(f"{type(exc).__name__}: {redact_text(text)}") from None
        raise
