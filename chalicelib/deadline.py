"""The processing deadline: an image that cannot finish before Lambda's time limit gets its
outcome recorded while there is still time, instead of leaving no record when the function
is killed (and a gallery waiting forever).

The handler turns the Lambda context's remaining time into a `Deadline`, keeping a safety
margin (`DEADLINE_MARGIN_MS`, or 10% of the time if that is more) for writing the record and
the event. The use case runs the attempt in a worker thread and watches the clock (see
processing.handle_upload); at the deadline it sets the attempt's `Watch.cancel`, and every
later write of that attempt raises `Cancelled` instead (Python threads cannot be killed: a
decode in progress runs on, but what it produces is never written)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


class Cancelled(Exception):
    """The deadline passed: this attempt is abandoned and writes nothing more."""


class OutOfTime(Exception):
    """Too little time left to start an image: raised, so the event is delivered again."""


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() by which the attempt must be done
    grace: float  # seconds an attempt that is already recording may still take
    limit: float  # the time the function had in all, for messages

    @classmethod
    def from_context(cls, context: Any, margin_ms: int) -> Deadline | None:
        """None without a Lambda context, or when its time is too short to keep a margin
        (a limit under twice the margin: chalice's test client reports 3 s)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if not callable(remaining):
            return None
        left_ms = float(remaining())
        keep_ms = max(float(margin_ms), left_ms / 10)
        if left_ms < 2 * keep_ms:
            return None
        return cls(at=time.monotonic() + (left_ms - keep_ms) / 1000, grace=keep_ms / 2000, limit=left_ms / 1000)

    def remaining(self) -> float:
        return self.at - time.monotonic()


@dataclass
class Watch:
    """Shared by the worker running an attempt and the thread watching the clock."""

    deadline: Deadline
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = "read"  # read -> render (decode, encode, upload) -> record
    attempt: Any = None  # the processing.Attempt running (set by it)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enter(self, stage: str) -> None:
        with self._lock:  # atomic with give_up: a stage is either entered or cancelled
            self.check()
            self.stage = stage

    def give_up(self, *, even_recording: bool = False) -> bool:
        """Cancel the attempt, unless it is recording its result (then False, unless forced)."""
        with self._lock:
            if self.stage == "record" and not even_recording:
                return False
            self.cancel.set()
            return True

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"abandoned at the deadline during {self.stage}")
