"""Trade-id bookkeeping: duplicates, gaps, late fills, bounded memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.tracking import Gap, Seen, TradeIdTracker


def test_contiguous_ids_are_new_and_repeats_are_duplicates() -> None:
    t = TradeIdTracker()
    assert [t.observe("X", i).duplicate for i in (1, 2, 3, 2, 3, 4)] == [False, False, False, True, True, False]
    assert t.high("X") == 4 and t.open_gaps("X") == []


def test_a_jump_opens_a_gap_that_late_ids_fill_once() -> None:
    t = TradeIdTracker()
    t.observe("X", 10)
    assert t.observe("X", 15).gap == Gap(11, 14)
    assert t.observe("X", 12).filled
    assert t.open_gaps("X") == [Gap(11, 11), Gap(13, 14)]
    assert t.observe("X", 12).duplicate
    assert t.observe("X", 9).duplicate  # below the first id seen: a replay of older trades
    assert t.open_gaps("Y") == []


def test_an_aggregated_trade_covers_its_span_of_ids() -> None:
    t = TradeIdTracker()
    t.observe("X", 10)
    assert t.observe("X", 14, first_id=11) == Seen()  # ids 11..14 in one push: no gap
    assert t.high("X") == 14
    assert t.observe("X", 20, first_id=18).gap == Gap(15, 17)  # only the ids before the span are missing
    assert t.observe("X", 20, first_id=18).duplicate


def test_the_venue_announcing_its_last_id_opens_a_gap() -> None:
    t = TradeIdTracker()
    t.observe("X", 5)
    assert t.expect("X", 5) is None
    assert t.expect("X", 8) == Gap(6, 8)
    assert t.observe("X", 7).filled
    assert t.observe("X", 9).gap is None


def test_open_gaps_are_capped() -> None:
    t = TradeIdTracker(max_open_gaps=3)
    for i in range(0, 20, 2):
        t.observe("X", i)
    assert len(t.open_gaps("X")) == 3 and t.expired_gaps == 6
    assert t.open_gaps("X")[0] == Gap(13, 13)


@given(st.lists(st.integers(1, 60), min_size=1, max_size=300))
def test_every_id_is_accepted_exactly_once(ids: list[int]) -> None:
    """Any arrival order with any repeats: each id passes once; gaps are exactly the ids never seen."""
    t = TradeIdTracker()
    accepted = [i for i in ids if not t.observe("X", i).duplicate]
    first = ids[0]
    assert sorted(accepted) == sorted({i for i in ids if i >= first})
    missing = {i for g in t.open_gaps("X") for i in range(g.first, g.last + 1)}
    assert missing == set(range(first, max(ids) + 1)) - set(ids)
