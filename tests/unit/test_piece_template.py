"""A piece's texts, filled into its query's template, are byte for byte what writing the
piece's own values gives: the stored spec earlier versions wrote, and the same fingerprint,
so the cache finds a piece whichever way its spec was made (a batch's split, a data request,
an earlier version)."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from querybatch.domain.batch import PieceTemplate, PlannedQuery
from querybatch.domain.query import QuerySpec, fingerprint_of
from querybatch.store.codec import decode_spec, encode_spec

# Text that JSON must escape, and text that looks like the template's own markers.
texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ['"', "\\", "accounts", '"start_date"', "\u2028", "\x00"]
)
days = st.dates(date(2000, 1, 1), date(2100, 12, 31))
settings = st.dictionaries(
    texts, st.none() | st.booleans() | st.integers(-(2**40), 2**40) | texts, max_size=4
)


@st.composite
def specs(draw: st.DrawFn) -> QuerySpec:
    start = draw(days)
    return QuerySpec(
        ds_id=draw(texts),
        accounts=tuple(draw(st.lists(texts, min_size=1, max_size=3))),
        start_date=start,
        end_date=draw(days.filter(lambda d: d >= start)),
        fields=tuple(draw(st.lists(texts, min_size=1, max_size=4))),
        segments=tuple(draw(st.lists(texts, max_size=2))),
        filter=draw(st.none() | texts),
        order_rows=tuple(draw(st.lists(texts, max_size=2))),
        settings=draw(settings),
    )


@given(specs(), st.lists(texts, min_size=1, max_size=3), days, days)
def test_a_piece_from_the_template_is_the_canonical_text_of_its_values(
    spec: QuerySpec, accounts: list[str], first: date, last: date
) -> None:
    start, end = min(first, last), max(first, last)
    narrowed = spec.narrowed(tuple(accounts), start, end)

    piece = PlannedQuery.piece("s", spec, PieceTemplate(spec), tuple(accounts), start, end)

    assert piece.spec_text == encode_spec(narrowed)
    assert piece.fingerprint == fingerprint_of(narrowed.canonical()) == narrowed.fingerprint()
    assert decode_spec(piece.spec_text) == narrowed


def test_one_template_makes_every_piece_of_its_query() -> None:
    spec = QuerySpec(
        ds_id="DEMO_ADS",
        accounts=("ads-0001", "ads-0002"),
        start_date=date(2026, 1, 1),
        end_date=date(2026, 1, 31),
        fields=("date", "clicks"),
    )
    template = PieceTemplate(spec)
    for accounts, day in [(("ads-0001",), 1), (("ads-0002",), 1), (("ads-0001",), 9)]:
        piece_day = date(2026, 1, day)
        piece = PlannedQuery.piece("s", spec, template, accounts, piece_day, piece_day)
        assert piece.fingerprint == spec.narrowed(accounts, piece_day, piece_day).fingerprint()
