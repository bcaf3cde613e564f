"""Compressed inputs (`.gz`, `.zst`) as byte streams read in bounded pieces (no Ray).

`open_decompressed(path, compression)` gives a file object whose `read1(n)` returns at most
`n` decompressed bytes, so a reader's memory does not grow with the file. Damage (a file cut
short, bytes that are not the format) is raised as one of `DAMAGED` when it is reached, after
every byte before it has been returned by `read1` (not by `read(n)`: a buffered `read(n)`
drops what it gathered when a later piece fails): the caller keeps what it read and rejects
the rest as `truncated_file`.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import zlib
from collections.abc import Iterator

from ..storage.remote_files import open_stream

# zlib.error: a corrupt deflate stream inside a well-formed gzip header (not an OSError)
DAMAGED = (EOFError, OSError, zlib.error)
ZSTD_INPUT_BYTES = 16 * 1024     # compressed bytes fed per step (output ~ this x the ratio)


@contextlib.contextmanager
def open_decompressed(path: str, compression: str | None,
                      buffer_bytes: int | None = None) -> Iterator:
    """The file's decompressed bytes (the file itself when `compression` is None)."""
    raw = open_stream(path) if buffer_bytes is None else open_stream(path, buffer_bytes)
    with raw:
        if compression is None:
            yield raw
        elif compression == "gzip":
            with gzip.open(raw, "rb") as fh:
                yield fh
        elif compression == "zstd":
            yield ZstdStream(raw)
        else:
            raise ValueError(f"unknown compression {compression!r}")


class ZstdStream(io.RawIOBase):
    """Zstandard frames (one or many, as `zstd` and `pzstd` write them) as a readable stream.

    Built on `decompressobj` rather than `stream_reader` because the latter returns a clean
    end of stream for input cut inside a frame; here that is an EOFError, as gzip gives. Input
    goes in ZSTD_INPUT_BYTES at a time, so one step's output is bounded by that times the
    compression ratio (~5-15x for JSON text)."""

    def __init__(self, raw):
        import zstandard

        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._error = zstandard.ZstdError
        self._frame = None          # decompressobj of the current frame
        self._frame_fed = False     # that frame has been given input and has not ended
        self._carry = b""           # input past the end of the last frame
        self._out = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all, for -1); like `read1`, it returns what one step gave
        rather than wait for more, so bytes before damage are returned before the error."""
        if size < 0:
            while not self._done:
                self._step()
        while not self._out and not self._done:
            self._step()
        if size < 0 or size >= len(self._out):
            data, self._out = bytes(self._out), bytearray()
        else:
            data = bytes(self._out[:size])
            del self._out[:size]
        return data

    read1 = read

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _step(self) -> None:
        data, self._carry = self._carry or self._raw.read(ZSTD_INPUT_BYTES), b""
        if not data:
            self._done = True
            if self._frame_fed:
                raise EOFError("zstd input ends inside a frame (the file is cut short)")
            return
        if self._frame is None:
            self._frame = self._dctx.decompressobj()
        try:
            self._out += self._frame.decompress(data)
        except self._error as exc:
            self._done = True
            raise OSError(f"not valid zstd data: {exc}") from None
        self._frame_fed = not self._frame.eof
        if self._frame.eof:                 # next frame (if any) starts with what is left
            self._carry, self._frame = self._frame.unused_data, None
