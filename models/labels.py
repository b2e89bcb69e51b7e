"""Labels over the horizon (t, t+H], and the trailing quantities the baselines use."""

from __future__ import annotations

import numpy as np
import pandas as pd

TASKS = ("vol_spike", "direction")


def step_returns(grid: pd.DataFrame) -> pd.Series:
    return pd.Series(np.log(grid["close"]).diff(), index=grid.index)


def future_realized_vol(grid: pd.DataFrame, horizon: int) -> pd.Series:
    """sqrt(sum of squared step returns over (t, t+H]); NaN where the future is not known."""
    r2 = step_returns(grid) ** 2
    trailing = r2.rolling(horizon).sum()  # over (t-H, t]
    return pd.Series(np.sqrt(trailing.shift(-horizon)), index=grid.index)


def trailing_realized_vol(grid: pd.DataFrame, horizon: int) -> pd.Series:
    """The same quantity over (t-H, t]: known at t (the persistence baseline)."""
    return pd.Series(np.sqrt((step_returns(grid) ** 2).rolling(horizon).sum()), index=grid.index)


def future_return(grid: pd.DataFrame, horizon: int) -> pd.Series:
    log_close = np.log(grid["close"])
    return pd.Series(log_close.shift(-horizon) - log_close, index=grid.index)


def vol_spike(future_rv: pd.Series, threshold: float) -> pd.Series:
    return (future_rv > threshold).astype(float).where(future_rv.notna())


def direction(future_ret: pd.Series) -> pd.Series:
    """1 when the price rises over (t, t+H], else 0."""
    return (future_ret > 0).astype(float).where(future_ret.notna())


def outcome(task: str, grid: pd.DataFrame, horizon: int, threshold: float | None) -> pd.Series:
    """The task's label at each grid time (NaN until (t, t+H] has passed), from a fixed threshold."""
    if task == "vol_spike":
        return vol_spike(future_realized_vol(grid, horizon), float(threshold or 0))
    return direction(future_return(grid, horizon))
