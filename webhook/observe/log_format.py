"""Process logs (stderr) that a submitter cannot forge lines in.

Log messages quote what an AdmissionReview carries (names, image references, reasons
from a registry), and a request that reaches the port may carry anything: a line break
in a name would start a fake log line, a bidi override would reorder what an operator
reads, and a terminal escape would reach whoever tails the log. So control, line and
bidi-control characters in a message are written as escapes. Tracebacks keep their
lines (they are ours, appended after the message).
"""

from __future__ import annotations

import logging
import sys

_UNSAFE = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _UNSAFE}


def printable(text: str) -> str:
    """``text`` with control, line-separator and bidi-control characters escaped."""
    return text.translate(_ESCAPES)


class PrintableFormatter(logging.Formatter):
    """A Formatter whose message part is always one line of printable text."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def configure_logging(worker: int | None = None) -> None:
    """INFO and up to stderr, one printable line per message (``[wN]`` on worker ``N``'s lines;
    a worker replaces what it inherited, the main process leaves configured logging alone)."""
    tag = "" if worker is None else f"[w{worker}]"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=worker is not None)
