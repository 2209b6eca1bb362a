"""One JSON line per decision, to stdout and optionally to a file.

Every answer (allowed, denied, dry-run, engine error) is written, flushed per line,
so a crash loses nothing that was answered. Objects are never logged whole:
only names, image references and findings.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

import orjson


class DecisionLog:
    """Writes decision records as JSON lines; thread- and task-safe."""

    def __init__(self, path: Path | None = None, *, stream: IO[str] | None = None, fsync: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stdout
        # stdout as bytes: no decode and no text layer for the one line per request
        self._bytes: IO[bytes] | None = getattr(sys.stdout, "buffer", None) if stream is None else None
        self._path = path
        self._fsync = fsync
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._inode: int | None = None

    def _sink(self) -> IO[bytes] | None:
        """The file sink, reopened when log rotation moved it away."""
        if self._path is None:
            return None
        try:
            inode = os.stat(self._path).st_ino
        except FileNotFoundError:
            inode = None
        if self._file is None or inode != self._inode:
            if self._file is not None:
                self._file.close()
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._path, "ab")  # noqa: SIM115 - kept open across writes
            self._inode = os.fstat(self._file.fileno()).st_ino
        return self._file

    def write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, default=str) + b"\n"
        with self._lock:
            if self._bytes is not None:
                self._bytes.write(line)
                self._bytes.flush()
            else:
                self._stream.write(line.decode())
                self._stream.flush()
            sink = self._sink()
            if sink is not None:
                sink.write(line)
                sink.flush()
                if self._fsync:
                    os.fsync(sink.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
