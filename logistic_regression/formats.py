"""How an input file is written: its format (from its name), compression, text encoding,
separator and decimal mark; and, when the encoding is wrong, which common ones fit.

No pandas here: the settings are checked (`check_options`) before the slow imports, and
the encoding guess reads the bytes with the standard library alone.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import PurePosixPath

from logistic_regression.errors import ConfigError

# A compressed CSV, by its last suffix, as pandas' `compression=` names it.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}
SUFFIXES = ".csv (or .csv.gz, .bz2, .zip, .xz, .zst), .parquet or .xlsx"
# A separator written as a name or an escape (`data.sep='\t'` on a command line is
# backslash-t, two characters): the character it means.
SEPARATOR_NAMES = {"\\t": "\t", "tab": "\t"}
# What Excel writes on Windows, tried in this order when a file does not decode.
COMMON_ENCODINGS = {
    "utf-8": "UTF-8",
    "cp932": "Shift_JIS, Japanese Windows",
    "cp1252": "Latin-1, Western European Windows",
    "utf-16": "Excel's Unicode text",
}


@dataclass(frozen=True)
class ReadOptions:
    """The data section's settings for reading text tables (and the sheet of a workbook)."""

    encoding: str = "utf-8"
    sep: str = ","
    decimal: str = "."
    sheet: str = ""


PLAIN_CSV = ReadOptions()  # UTF-8, commas, decimal points: what the kit always read


def read_options(section: Mapping) -> ReadOptions:
    """The reading settings of a data section (the config's, or one a run recorded: an
    older run recorded none, and read its input as `PLAIN_CSV`)."""
    names = [f.name for f in fields(ReadOptions)]
    return ReadOptions(**{name: str(section[name]) for name in names if name in section})


def table_format(name: str) -> tuple[str, str | None] | None:
    """`("csv", "gzip")` for `t.csv.gz`, `("excel", None)` for `t.xlsx`; None when the
    kit cannot read the file by its name."""
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    kind = (suffixes[:-1] if compression else suffixes)[-1:]
    if kind == [".csv"]:
        return "csv", compression
    if compression:
        return None  # only CSV is read compressed
    return {".parquet": ("parquet", None), ".pq": ("parquet", None), ".xlsx": ("excel", None)}.get(
        kind[0] if kind else ""
    )


def codec(encoding: str) -> str:
    """The codec to decode with: UTF-8 reads a leading byte-order mark (Excel's "CSV UTF-8"
    writes one) instead of making it part of the first column's name."""
    name = codecs.lookup(encoding).name
    return "utf-8-sig" if name == "utf-8" else name


def separator(sep: str) -> str:
    return SEPARATOR_NAMES.get(sep, sep)


def check_options(options: ReadOptions, uri: str) -> None:
    """Refuse settings pandas would misread silently: an unknown or non-text encoding, a
    separator or decimal mark that is not one character (pandas takes a longer separator
    as a regular expression), the two the same, a sheet for a file that is not a workbook."""
    known = ", ".join(COMMON_ENCODINGS)
    try:
        "".encode(options.encoding)  # base64 and rot13 are codecs, not text encodings
    except LookupError:
        raise ConfigError(
            f"data.encoding={options.encoding!r} is not allowed: it is not a text encoding "
            f"Python knows; use a codec name such as {known}"
        ) from None
    sep = separator(options.sep)
    if len(sep) != 1 or sep in '"\r\n' or sep.isalnum():
        raise ConfigError(
            f"data.sep={options.sep!r} is not allowed; give one character such as ',', ';', "
            "'|' or '\\t' (tab)"
        )
    if len(options.decimal) != 1 or options.decimal == sep or options.decimal.isalnum():
        raise ConfigError(
            f"data.decimal={options.decimal!r} is not allowed; give one character, '.' or ',', "
            f"other than data.sep ({sep!r})"
        )
    if options.sheet and (table_format(uri) or ("", None))[0] != "excel":
        raise ConfigError(
            f"data.sheet={options.sheet!r} is not allowed for data.input={uri!r}: only an "
            ".xlsx input has sheets; leave it empty"
        )


def decodings(blocks: Iterator[bytes], tried: str) -> list[str]:
    """The common encodings (other than `tried`) that decode every byte of the file, the
    likeliest first: Latin-1 decodes any bytes and cp932 most Western ones, so the
    plain "does it decode" is ranked by how much the text looks like words."""
    decoders = {
        name: codecs.getincrementaldecoder(codec(name))()
        for name in COMMON_ENCODINGS
        if codecs.lookup(name).name != codecs.lookup(tried).name
    }
    samples = {name: "" for name in decoders}
    for index, block in enumerate([*blocks, b""]):
        if index == 0 and not block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            decoders.pop("utf-16", None)  # without its mark, UTF-16 "decodes" any even bytes
        for name, decoder in list(decoders.items()):
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError:
                del decoders[name]
                continue
            if len(samples[name]) < 1 << 16:
                samples[name] += text
    order = list(COMMON_ENCODINGS)
    return sorted(decoders, key=lambda name: (_oddness(samples[name]), order.index(name)))


def _oddness(text: str) -> int:
    """Characters a wrong decoding tends to make: symbols where letters were (Japanese
    read as cp1252: `“ú–{`), and ideographs or kana glued to Latin letters (German read
    as cp932: `M\u7e3aler`)."""
    odd = 0
    for before, char, after in zip(" " + text, text, text[1:] + " ", strict=False):
        if char.isascii() or char.isspace():
            continue
        if not unicodedata.category(char).startswith("L"):
            odd += 1
        elif ord(char) >= 0x3000 and any(c.isascii() and c.isalpha() for c in (before, after)):
            odd += 1
    return odd


def encoding_message(uri: str, tried: str, reason: str, fits: list[str]) -> str:
    """The one line for a file that is not in `tried`: what it decodes as, what to pass."""
    where = f"data.input={uri!r} is not {tried} text ({reason})"
    if not fits:
        return (
            f"{where}, nor {', '.join(n for n in COMMON_ENCODINGS if n != tried)}; pass its "
            "encoding as data.encoding=<codec name>"
        )
    shown = ", ".join(f"{name} ({COMMON_ENCODINGS[name]})" for name in fits)
    which = "pass the one it was written in, e.g." if len(fits) > 1 else "pass"
    return f"{where}; it decodes as {shown}: {which} data.encoding={fits[0]}"
