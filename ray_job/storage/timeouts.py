"""How long a call to an object store may take, and how often it is tried: the one place.

Left to their defaults the backends wait far too long on a store that stalls: botocore
waits 60 s to connect and 60 s for each read, tries 5 times (legacy mode), and s3fs tries
each of those 5 times again on a read timeout (about 25 minutes per call); aiohttp, under
fsspec's http(s) filesystem, gives a request 5 minutes. Here every object-store call has a
connect and a read timeout and a bounded number of attempts, so a store that is down or
stalled fails the call within a known time (then one line, resumable: cli.py):

- s3:// (botocore via s3fs): connect 5 s, read 15 s, 5 attempts in botocore's standard
  mode (exponential backoff with jitter, at most 1 + 2 + 4 + 8 s between them), and s3fs
  itself tries a call twice (a body cut mid-stream). A store refusing connections fails a
  call after at most ~15 s of backoff; a stalled one after at most 2 x 5 x 15 s + backoff.
- http(s):// (aiohttp): connect 5 s, 15 s of silence on the socket; no retries.

What a user sets in fsspec's own configuration (FSSPEC_S3_CONFIG_KWARGS, ...) wins over
these. hf:// keeps huggingface_hub's own timeouts (HF_HUB_DOWNLOAD_TIMEOUT, HF_HUB_ETAG_TIMEOUT).
"""
from __future__ import annotations

from fsspec.core import split_protocol

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15
STORE_ATTEMPTS = 5           # botocore: tries of one request, the first included
S3FS_ATTEMPTS = 2            # s3fs: tries of one call (each with its botocore attempts)


def _s3() -> dict:
    return {"config_kwargs": {"connect_timeout": CONNECT_TIMEOUT_S,
                              "read_timeout": READ_TIMEOUT_S,
                              # total_max_attempts: botocore's max_attempts counts retries
                              # (5 is 6 tries; it rewrites the dict in place to say so)
                              "retries": {"total_max_attempts": STORE_ATTEMPTS,
                                          "mode": "standard"}}}


def _http() -> dict:
    import aiohttp

    return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)}}


BOUNDED = {"s3": _s3, "s3a": _s3, "http": _http, "https": _http}


def storage_options(location: str) -> dict:
    """The timeout and retry options for the filesystem of `location` (none for a local
    path or a protocol not listed), to give fsspec's `url_to_fs` (nested by protocol for a
    chained URL); a key the user configured in fsspec's configuration is left to it."""
    from fsspec.config import conf

    layers = [split_protocol(part)[0] for part in str(location).split("::")]
    found = {}
    for protocol in layers:
        make = BOUNDED.get(protocol or "")
        if make:
            found[protocol] = {k: v for k, v in make().items() if k not in conf.get(protocol, {})}
    if len(layers) == 1:
        return next(iter(found.values()), {})
    return found


def bound_retries(fs) -> None:
    """What cannot be given to a filesystem's constructor: s3fs's own tries of a call (a
    class attribute, 5 by default)."""
    if type(fs).__module__.split(".")[0] == "s3fs":
        fs.retries = S3FS_ATTEMPTS
