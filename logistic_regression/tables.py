"""Parse an input file's bytes into a table: CSV (plain or compressed), Parquet, Excel.

The caller holds the bytes (an open file or an S3 object's body) and digests the same
bytes: these functions read them, from the start, as often as they need. A table read
wrong (undecodable, one column that holds separators) is one line saying what to pass.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pandas as pd

from logistic_regression.errors import DataError, first_line
from logistic_regression.formats import (
    ReadOptions,
    codec,
    decodings,
    encoding_message,
    separator,
    table_format,
)

# A separator a one-column header betrays, as the override names it.
LIKELY_SEPARATORS = {";": ";", "\t": "\\t", "|": "|"}
DECIMAL_COMMA = re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+")


def parse(source, name: str, options: ReadOptions, uri: str) -> pd.DataFrame:
    """The table in `source` (an open binary file), read as its `name` says."""
    kind, compression = table_format(name) or ("", None)
    try:
        if kind == "csv":
            return _read_csv(source, compression, options, uri)
        if kind == "excel":
            return _read_excel(source, options, uri)
        return pd.read_parquet(source)
    except ImportError as exc:  # openpyxl or zstandard missing from this environment
        raise DataError(f"data.input={uri!r} cannot be read here: {first_line(exc)}") from None
    except (ValueError, OSError, pd.errors.ParserError, zipfile.BadZipFile) as exc:
        raise DataError(f"data.input={uri!r} could not be read: {first_line(exc)}") from exc


def _csv_options(compression: str | None, options: ReadOptions) -> dict:
    return {
        "sep": separator(options.sep),
        "decimal": options.decimal,
        "encoding": codec(options.encoding),
        "compression": compression,
    }


def _read_csv(source, compression: str | None, options: ReadOptions, uri: str) -> pd.DataFrame:
    read = _csv_options(compression, options)
    try:
        source.seek(0)
        try:
            frame = pd.read_csv(source, **read)
        except pd.errors.ParserError:  # `1;2,5` rows under a `a;b` header: 1 or 2 fields
            _refuse_one_column_of_separators(source, _csv_header(source, read), read, uri)
            raise
        header = _csv_header(source, read)
    except UnicodeDecodeError as exc:
        fits = decodings(_blocks(source, compression), options.encoding)
        raise DataError(encoding_message(uri, options.encoding, first_line(exc), fits)) from None
    _refuse_one_column_of_separators(source, header, read, uri)
    refuse_repeated_names(header, uri)
    return frame


def _csv_header(source, read: dict) -> list[str]:
    """The header as written: pandas renames a repeated name (`a`, `a.1`)."""
    source.seek(0)
    first = pd.read_csv(source, header=None, nrows=1, dtype=str, keep_default_na=False, **read)
    return [] if first.empty else list(first.iloc[0])


def _refuse_one_column_of_separators(source, names: list[str], read: dict, uri: str) -> None:
    """A header of one column holding `;`, a tab or `|` is a file separated by that (and
    Excel's semicolon files write numbers with a decimal comma): say what to pass."""
    header = str(names[0]) if len(names) == 1 else ""
    found = [sep for sep in LIKELY_SEPARATORS if sep in header and sep != read["sep"]]
    if not found:
        return
    sep = found[0]
    advice = f"data.sep='{LIKELY_SEPARATORS[sep]}'"
    source.seek(0)
    sample = pd.read_csv(source, **{**read, "sep": sep}, nrows=200, dtype=str)
    cells = sample.stack().astype(str)
    if read["decimal"] != "," and cells.str.fullmatch(DECIMAL_COMMA).any():
        advice += " and data.decimal=','"
    raise DataError(
        f"data.input={uri!r} was read as one column {header!r}: its values are separated "
        f"by {sep!r}, not {read['sep']!r}; pass {advice}"
    )


def _blocks(source, compression: str | None) -> Iterator[bytes]:
    """The file's bytes as pandas decodes them (decompressed), a megabyte at a time."""
    source.seek(0)
    stream: Any  # gzip, bz2, lzma, zip and zstandard readers share read(), not a type
    if compression == "gzip":
        stream = gzip.GzipFile(fileobj=source)
    elif compression == "bz2":
        stream = bz2.BZ2File(source)
    elif compression == "xz":
        stream = lzma.LZMAFile(source)
    elif compression == "zip":
        archive = zipfile.ZipFile(source)
        stream = archive.open(archive.namelist()[0])
    elif compression == "zstd":
        import zstandard

        stream = zstandard.ZstdDecompressor().stream_reader(source)
    else:
        stream = source
    yield from iter(lambda: stream.read(1 << 20), b"")


def _read_excel(source, options: ReadOptions, uri: str) -> pd.DataFrame:
    """The first sheet of a workbook, or the one `data.sheet` names."""
    source.seek(0)
    with pd.ExcelFile(source, engine="openpyxl") as book:
        names = [str(sheet) for sheet in book.sheet_names]
        if options.sheet and options.sheet not in names:
            raise DataError(
                f"data.sheet={options.sheet!r} is not a sheet of {uri}; its sheets are: "
                + ", ".join(names)
            )
        sheet = options.sheet or 0
        frame = pd.read_excel(book, sheet_name=sheet)
        first = pd.read_excel(
            book, sheet_name=sheet, header=None, nrows=1, dtype=str, keep_default_na=False
        )
    refuse_repeated_names([] if first.empty else list(first.iloc[0]), uri)
    return frame


def refuse_repeated_names(names: list[str], uri: str) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(
            f"data.input={uri!r}: the column name {repeated[0]!r} appears more than once; "
            "each column needs a name of its own"
        )
