"""The fault campaign's injectors and judges: each returns a `FaultRow` (bench/faults.py prints
them; tests/test_faults.py runs short versions in the suite)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FaultRow:
    fault: str
    injected: int
    survived: bool
    lost: int
    duplicated: int
    recover_s: float | None = None
    detail: str = ""

    def line(self) -> str:
        recover = "-" if self.recover_s is None else f"{self.recover_s:.1f} s"
        return (
            f"{self.fault:44} {self.injected:>9,} {('yes' if self.survived else 'NO'):>8} "
            f"{self.lost:>6} {self.duplicated:>6} {recover:>9}  {self.detail}"
        )


HEADER = f"{'fault':44} {'injected':>9} {'survived':>8} {'lost':>6} {'dup':>6} {'recover':>9}  detail"
