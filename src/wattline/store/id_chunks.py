"""Long id lists split for ``IN (...)``: PostgreSQL takes at most 65,535 bound
parameters a statement (a 10,000-system tick asks about 113,000 series)."""

from __future__ import annotations

from typing import Iterator, Sequence

IDS_PER_STATEMENT = 10_000


def id_chunks(ids: Sequence[int], n: int | None = None) -> Iterator[Sequence[int]]:
    n = n or IDS_PER_STATEMENT  # read at call time (a test makes it small)
    for a in range(0, len(ids), n):
        yield ids[a:a + n]
