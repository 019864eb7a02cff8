"""One timer slot per protocol machine, kept in the loop's heap without duplicates piling up."""


class TimerSlot:
    """Arms the loop for a machine's `get_timer()` deadline; `fire(now)` runs when it comes due."""

    __slots__ = ("loop", "fire", "at")

    def __init__(self, loop, fire):
        self.loop = loop
        self.fire = fire
        self.at = None

    def arm(self, deadline):
        if deadline is None:
            return
        if self.at is not None and self.at <= deadline:
            return  # an earlier wake-up is already queued; it re-arms when it fires
        self.at = deadline
        self.loop.call_at(deadline, self._due)

    def _due(self, now):
        self.at = None
        self.fire(now)

    def cancel(self):
        self.fire = _nothing


def _nothing(now):
    pass
