"""Keep the workers' shares of keep-alive connections even.

``SO_REUSEPORT`` places each new connection on a worker by a hash of its addresses,
blind to how many each worker already holds: 16 connections split 8/8 between two
workers only one time in five, 10/6 or worse about one time in three. The API server
waits for each answer before it sends the next request on a connection, so the worker
holding fewer connections runs out of work between requests while the other queues
them; with connection rotation the split is drawn again and again, and on average two
workers lost ~10 % of their throughput to it (bench/workers_scaling.py, 16 connections).

Each worker counts its open connections in its own slot of an array shared by all
workers (shared memory, written only by its owner, so no lock). A worker holding at
least one connection more than the average answers its next request with
``connection: close``; the client reconnects and the kernel places the connection
again. A connection told to leave still counts in the total until it is gone (its
client will be back) but no longer in its worker's share, so a worker closes just its
excess, not more. Once the shares are even, nothing is closed.
"""

from __future__ import annotations

from collections.abc import MutableSequence


class ConnectionShare:
    """One worker's view of the shared connection counts (``counts[index]`` is its own)."""

    def __init__(self, counts: MutableSequence[int], index: int) -> None:
        self._counts, self._index = counts, index
        self._workers = len(counts)
        self._leaving = 0  # connections told to close after their answer, still open

    def opened(self) -> None:
        self._counts[self._index] += 1

    def leaving(self) -> None:
        """A connection of this worker answers its last request (rotation or balance)."""
        self._leaving += 1

    def closed(self, left: bool) -> None:
        """A connection is gone; ``left`` when it had been told to leave."""
        self._counts[self._index] -= 1
        if left:
            self._leaving -= 1

    def over_share(self) -> bool:
        """Whether this worker holds at least one connection more than the workers' average."""
        counts = self._counts[:]
        mine = counts[self._index] - self._leaving
        return self._workers * mine - sum(counts) >= self._workers
