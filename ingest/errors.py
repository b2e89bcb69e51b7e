"""Errors that route a message to the dead-letter topic instead of crashing."""


class BadMessage(ValueError):
    """A frame that cannot become a trade; `reason` is a short, stable label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
