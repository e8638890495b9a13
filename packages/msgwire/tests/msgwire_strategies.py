"""Hypothesis strategies for values every codec must carry."""

from __future__ import annotations

from datetime import timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

# JSON's own types. Floats exclude NaN (NaN != NaN breaks equality checks;
# it has tests of its own).
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
)

# The extended types of kombu's tags.
tagged_values = (
    st.datetimes(timezones=st.none() | st.just(timezone.utc))
    | st.dates()
    | st.times()
    | st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: Decimal(str(d)))
    | st.uuids()
    | st.binary()
)


def nested(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and str-keyed dicts of *scalars*, a few levels deep."""
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=20,
    )


json_values = nested(json_scalars)
rich_values = nested(json_scalars | tagged_values)

# msgpack carries integers of 64 bits at most.
msgpack_values = nested(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | tagged_values
)
