"""Ages as a person says them, for every status line and page."""

from __future__ import annotations

import math


def format_age(seconds: float) -> str:
    """'2.1 s', '45 s', '12 min 5 s', '3 h 4 min', '3 d 4 h': two units at most, the smaller truncated
    (an age of 3 h 4 min 59 s is not yet 3 h 5 min)."""
    if math.isnan(seconds):
        return "n/a"
    seconds = max(seconds, 0.0)
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    for unit, size, smaller, smaller_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if whole >= size:
            return f"{whole // size} {unit} {whole % size // smaller_size} {smaller}"
    return f"{whole} s"
