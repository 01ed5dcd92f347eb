"""Read and write riskd traffic logs (`*.rlog`) from Python.

A traffic log is msgpack maps with string keys written one after another, no
header (DESIGN.md section 6, docs/traffic.md). Each map is a score request as
a gateway sends it, optionally with `label` (1 fraud, 0 legitimate) and other
keys riskd ignores. This module is what Python tools (the traffic generator,
training scripts) share to read and write them; it needs only Debian's
python3-msgpack.

Key order: writers emit the standard fields in the order of RK_FIELD_MAP
(src/proto/txn.h), then `label`, then any other keys; that is the canonical
order `riskctl log to-csv` / `from-csv` preserve. STD_FIELDS lists it.
"""

import os
import sys

import msgpack

# The standard request fields in RK_FIELD_MAP order (src/proto/txn.h).
STD_FIELDS = ("id", "account", "amount", "ts", "currency", "type", "channel",
              "method", "card", "device", "ip", "email", "merchant", "country",
              "ip_country", "card_country", "mcc")


def read(path, max_record=1 << 20):
    """Yield each record of the log at `path` ('-' for stdin) as a dict.

    Raises ValueError when a value is not a map, msgpack's own errors when
    the bytes are not msgpack. A record cut short at the end of the file
    (a torn tail) ends the iteration silently, as riskd's reader does.
    """
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        up = msgpack.Unpacker(f, raw=False, strict_map_key=True,
                              max_buffer_size=max(max_record, 1 << 16))
        for i, rec in enumerate(up):
            if not isinstance(rec, dict):
                raise ValueError("%s: record %d is a %s, not a map"
                                 % (path, i, type(rec).__name__))
            yield rec
    finally:
        if f is not sys.stdin.buffer:
            f.close()


class Writer:
    """Writes records to `path` ('-' for stdout), buffered.

    A file is written under a temporary name next to it and renamed into
    place by close(), so an interrupted run never leaves a half-written log
    that looks complete. Use as a context manager; on an exception the
    temporary file is removed and `path` is left as it was.
    """

    def __init__(self, path, bufsize=1 << 20):
        self.path = path
        self.tmp = None
        if path == "-":
            self.f = sys.stdout.buffer
        else:
            self.tmp = "%s.tmp%d" % (path, os.getpid())
            self.f = open(self.tmp, "wb", buffering=bufsize)
        self.packer = msgpack.Packer(use_bin_type=True, autoreset=True)
        self.bytes = 0

    def write(self, rec):
        """Appends one record (a dict)."""
        b = self.packer.pack(rec)
        self.f.write(b)
        self.bytes += len(b)

    def write_packed(self, data):
        """Appends bytes already holding whole packed records."""
        self.f.write(data)
        self.bytes += len(data)

    def close(self):
        if self.tmp is None:
            self.f.flush()
            return
        self.f.close()
        os.replace(self.tmp, self.path)
        self.tmp = None

    def abort(self):
        if self.tmp is not None:
            self.f.close()
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
