"""JSON Lines cut into lines from bounded chunks of bytes (pure, no Ray).

Nothing here reads more than CHUNK_BYTES at once or holds more than one line (at most
MAX_LINE_BYTES) plus one chunk, and nothing is quadratic in a line's length:
- a line longer than MAX_LINE_BYTES is rejected (`line_too_long`) after MAX_LINE_BYTES of it;
  the rest is skipped chunk by chunk, never joined;
- a byte-range unit that starts inside a line scans only its own range for the next line
  start (`first_line_start`): a unit inside a long line reads its range once and yields
  nothing, so a 100 MB line is read by the unit it starts in and scanned once by the others.
A line's position is the byte offset of its first byte in the (decompressed) file, as
`readline` counted it: keys are the same as ever.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from .text import RejectRow

CHUNK_BYTES = 1024 * 1024
# The longest line read: a JSON record of 64 MiB (the json module makes ~3-5x that in Python
# objects) is no paper's metadata; the cap keeps a read task's memory bounded whatever the file.
MAX_LINE_BYTES = 64 * 1024 * 1024
Line = tuple[int, bytes | RejectRow]


def iter_lines(chunks: Iterable[bytes], position: int = 0, end: int | None = None,
               max_line: int | None = None, name: str = "input",
               damaged: tuple[type[BaseException], ...] = ()) -> Iterator[Line]:
    """(position, line with its newline) for the lines that start before `end` (None: all),
    `chunks` being the bytes from `position` on, a line start. A line over `max_line` bytes
    (its newline counted) is (position, RejectRow("line_too_long")). A chunk source that fails
    with one of `damaged` (DAMAGED for a compressed file cut short) ends with (position,
    RejectRow("truncated_file")), at the start of the incomplete line (or at the damage, inside
    a line already rejected); any other error is the caller's. `max_line`: MAX_LINE_BYTES."""
    max_line = MAX_LINE_BYTES if max_line is None else max_line
    pending: list[bytes] = []       # pieces of the current line, no newline yet
    pending_len = 0
    skipping = False                # the current line was rejected as too long
    read = position                 # offset just past the bytes taken from `chunks`
    source = iter(chunks)
    while end is None or position < end:
        try:
            chunk = next(source, None)
        except damaged as exc:
            yield (read if skipping else position), RejectRow(
                "truncated_file", f"{name}: {exc}; rest of file not read")
            return
        if not chunk:
            break
        read += len(chunk)
        i, n = 0, len(chunk)
        while i < n:
            j = chunk.find(b"\n", i)
            stop = n if j < 0 else j + 1
            pending_len += stop - i
            if not skipping:
                if pending_len > max_line:
                    yield position, _too_long(max_line)
                    skipping, pending = True, []
                else:
                    pending.append(chunk[i:stop] if i or stop < n else chunk)
            i = stop
            if j < 0:
                break                  # the line goes on in the next chunk
            if not skipping:
                yield position, pending[0] if len(pending) == 1 else b"".join(pending)
            position += pending_len
            pending, pending_len, skipping = [], 0, False
            if end is not None and position >= end:
                return
        if skipping and end is not None and position + pending_len >= end:
            return                     # the next line starts past `end`: another unit's
    if pending_len and not skipping:   # the last line has no newline
        yield position, b"".join(pending)


def _too_long(max_line: int) -> RejectRow:
    return RejectRow("line_too_long", f"line longer than {max_line:,} bytes; not read further")


def first_line_start(fh, start: int, end: int | None,
                     chunk_bytes: int = CHUNK_BYTES) -> int | None:
    """The offset of the first line that starts in [start, end) of a seekable file, or None
    when none does (the range lies inside one line). Reads only bytes [start - 1, end - 1)."""
    if start == 0:
        return 0
    offset = start - 1
    fh.seek(offset)
    while end is None or offset < end - 1:
        want = chunk_bytes if end is None else min(chunk_bytes, end - 1 - offset)
        data = fh.read(want)
        if not data:
            return None
        j = data.find(b"\n")
        if j >= 0:
            return offset + j + 1
        offset += len(data)
    return None


def range_chunks(fh, position: int, end: int | None,
                 chunk_bytes: int = CHUNK_BYTES, slack: int = 64 * 1024) -> Iterator[bytes]:
    """Chunks of a seekable file from `position` on: up to `end` in pieces of at most
    `chunk_bytes`, then `slack` bytes, doubling up to `chunk_bytes` (the unit's last line runs
    past `end`: usually by less than `slack`)."""
    fh.seek(position)
    while True:
        left = (end - position) if end is not None else chunk_bytes
        if left > 0:
            data = fh.read(min(chunk_bytes, left))
        else:
            data, slack = fh.read(slack), min(2 * slack, chunk_bytes)
        if not data:
            return
        position += len(data)
        yield data


def stream_chunks(fh, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Chunks of a stream (a decompressed file) to its end, of at most `chunk_bytes`. `read1`
    where the stream has it: each chunk is what one step decompressed, so every byte before
    damage in a compressed file comes out before the error does."""
    read = getattr(fh, "read1", fh.read)
    while True:
        data = read(chunk_bytes)
        if not data:
            return
        yield data
