"""What a batch decoder returns: good rows as columns, bad rows as reasons.

A decoder never raises for bad input. Each input position ends up either in
`index` (a good row) or in `errors` (position and reason), so the caller can
dead-letter the raw bytes of exactly the records that failed and account for
every record.

The good rows are held in whichever form the decoder produced them in (a
polars DataFrame from the batch Avro path, Python lists from the per-record
paths) and converted on first use, so a consumer pays only for the form it
reads: `frame` for vectorised filtering, `columns` for a per-row loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, overload

import polars as pl

DecodeError = tuple[int, str]


class DecodedBatch:
    """Good rows of one input batch plus the positions and reasons of the bad ones.

    `index[i]` is the input position of good row i (ascending); every column
    has `len(index)` values. Event-time columns hold int epoch milliseconds.
    When every record of a range decoded, `index` is that `range`: polars
    makes a column of it without a Python int per row.
    """

    __slots__ = ("_columns", "_frame", "errors", "index", "names")

    def __init__(
        self,
        names: Sequence[str],
        index: Sequence[int],
        errors: list[DecodeError],
        *,
        columns: dict[str, list[Any]] | None = None,
        frame: pl.DataFrame | None = None,
    ) -> None:
        if (columns is None) == (frame is None):
            raise ValueError("give exactly one of columns or frame")
        self.names = tuple(names)
        self.index = index
        self.errors = errors
        self._columns = columns
        self._frame = frame

    @property
    def columns(self) -> dict[str, list[Any]]:
        """Column name -> Python list of values, in `index` order."""
        if self._columns is None:
            assert self._frame is not None
            self._columns = {name: self._frame.get_column(name).to_list() for name in self.names}
        return self._columns

    @property
    def frame(self) -> pl.DataFrame:
        """The good rows as a polars DataFrame (columns in `names` order)."""
        if self._frame is None:
            assert self._columns is not None
            self._frame = pl.DataFrame({name: self._columns[name] for name in self.names}, strict=False)
        return self._frame

    def rows(self) -> list[dict[str, Any]]:
        """Good rows as dicts; convenient in tests and slow paths, not in hot loops."""
        cols = self.columns
        return [dict(zip(self.names, values)) for values in zip(*(cols[n] for n in self.names))] if self.names else [
            {} for _ in self.index
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"DecodedBatch(good={len(self.index)}, errors={self.errors!r})"


class BatchDecoder(Protocol):
    """Decodes the values of one batch of records of a stream."""

    columns: tuple[str, ...]

    def decode(self, values: Sequence[bytes | None]) -> DecodedBatch: ...


def merge_batches(names: Sequence[str], parts: Sequence[DecodedBatch], errors: list[DecodeError]) -> DecodedBatch:
    """Combine decoded sub-batches (e.g. one per schema id) back into input order."""
    parts = [p for p in parts if len(p) or p.errors]
    all_errors = sorted(errors + [e for p in parts for e in p.errors])
    good = [p for p in parts if len(p)]
    if not good:
        return DecodedBatch(names, [], all_errors, columns={n: [] for n in names})
    if len(good) == 1:  # the usual case: keep the part's own form, convert nothing
        only = good[0]
        if only._frame is not None:
            return DecodedBatch(names, only.index, all_errors, frame=only._frame)
        return DecodedBatch(names, only.index, all_errors, columns=only.columns)
    order = sorted((pos, k, i) for k, p in enumerate(good) for i, pos in enumerate(p.index))
    columns = {n: [good[k].columns[n][i] for _, k, i in order] for n in names}
    return DecodedBatch(names, [pos for pos, _, _ in order], all_errors, columns=columns)


def concat_batches(names: Sequence[str], *parts: DecodedBatch) -> DecodedBatch:
    """Join the results of consecutive ranges of one input (positions stay ascending)."""
    if len(parts) == 1:
        return parts[0]
    index = _joined_index([p.index for p in parts])
    errors = [e for p in parts for e in p.errors]
    if all(p._frame is not None for p in parts):  # all straight from polars: stay columnar
        frame = pl.concat([p._frame for p in parts], how="vertical_relaxed")  # type: ignore[misc]
        return DecodedBatch(names, index, errors, frame=frame)
    columns = {n: [v for p in parts if len(p) for v in p.columns[n]] for n in names}
    return DecodedBatch(names, index, errors, columns=columns)


def _joined_index(indexes: Sequence[Sequence[int]]) -> Sequence[int]:
    """Consecutive ranges stay one range; anything else becomes a list."""
    ranges = [ix for ix in indexes if len(ix)]
    if all(isinstance(ix, range) and ix.step == 1 for ix in ranges) and all(
        a.stop == b.start for a, b in zip(ranges, ranges[1:])  # type: ignore[union-attr]
    ):
        return range(ranges[0].start, ranges[-1].stop) if ranges else range(0)  # type: ignore[union-attr]
    return [pos for ix in indexes for pos in ix]


class NativeValues(Sequence[bytes | None]):
    """The values of a native reader's MessageBatch (`iot_native`) as
    a sequence of bytes, made on first use: a decoder with a native path
    reads `batch` in place and never makes them."""

    __slots__ = ("_list", "batch")

    def __init__(self, batch: Any) -> None:
        self.batch = batch
        self._list: list[bytes | None] | None = None

    def as_list(self) -> list[bytes | None]:
        if self._list is None:
            self._list = self.batch.values()
        return self._list

    def __len__(self) -> int:
        return len(self.batch)

    @overload
    def __getitem__(self, i: int) -> bytes | None: ...

    @overload
    def __getitem__(self, i: slice) -> list[bytes | None]: ...

    def __getitem__(self, i: int | slice) -> Any:
        if self._list is None and isinstance(i, int):
            return self.batch.value(i)  # one value (a batch's first header, say) makes no list
        return self.as_list()[i]

    def __iter__(self) -> Iterator[bytes | None]:
        return iter(self.as_list())
