"""How many request-body bytes one process holds while receiving them, at most.

``admission.max_body_bytes`` bounds one body; nothing bounded them all. A client that
opens many connections and sends most of a large body on each, then stalls, made the
process hold every byte until the read deadline (60 such bodies: +200 MB of RSS), and
enough of them would get the pod killed for memory. Bytes are counted as they arrive,
not as declared, so a client has to send what it holds; beyond the budget a request is
answered 503 (the API server then applies the webhook's failurePolicy) and the process
stays up. Single-threaded use on the event loop: no lock.
"""

from __future__ import annotations


class BodyBudget:
    """A count of body bytes being received, against ``limit`` (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes if they fit; False (nothing counted) if they do not."""
        if self.limit and self.in_use + size > self.limit:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        self.in_use -= size
