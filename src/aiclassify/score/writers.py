"""Result files written as scoring goes, and read back to resume: CSV and JSON lines.

The format follows the suffix: ``.csv`` (a header line, then one flattened row a line:
:func:`aiclassify.score.rows.flatten`) or ``.jsonl`` (one JSON object a line, nested as the API's
image result). Every record is one physical line ending in ``\\n``: JSON is written ASCII, its
line breaks escaped, and CSV cells have their non-printable characters written as backslash escapes
(:func:`aiclassify.logs.printable`; so a CSV ``path`` can differ from the file's name when that name
holds such characters, consistently from run to run).

:func:`open_results` opens a file for appending and reads what it already holds: the paths it has
rows for (scored, or listed with an error: neither is scored again) and the model and threshold
they were written with, which must be the caller's (:class:`~aiclassify.score.rows.Provenance`).
A process killed mid-write leaves at most one partial last line, without its ``\\n``: it is cut off
before appending. Any other line that does not parse, or a CSV header that is not
:data:`~aiclassify.score.rows.CSV_COLUMNS`, is an error: the file is not ours to repair.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiclassify.logs import printable
from aiclassify.score.rows import CSV_COLUMNS, Provenance, flatten

SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True)
class ExistingResults:
    """What an output file already held when it was opened."""

    paths: frozenset[str]  # files with a row: scored or listed with an error
    errors: int  # rows with an error
    dropped_bytes: int  # the partial last line cut off (0: none)


class CsvFormat:
    """CSV rows: a header line of :data:`CSV_COLUMNS`, then one flattened row per line."""

    header = ",".join(CSV_COLUMNS) + "\n"

    def encode(self, row: dict[str, Any]) -> str:
        """One row as a CSV line (None as an empty cell, floats as ``repr``)."""
        buffer = io.StringIO()
        cells = [_cell(value) for value in flatten(row).values()]
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue()

    def decode(self, line: str) -> dict[str, Any]:
        """The ``path``, ``error``, ``run``, ``threshold`` and ``operating_point`` of one line."""
        cells = next(csv.reader([line], strict=True))
        if len(cells) != len(CSV_COLUMNS):
            raise ValueError(f"{len(cells)} cells instead of {len(CSV_COLUMNS)}")
        values = dict(zip(CSV_COLUMNS, cells, strict=True))
        return {
            "path": values["path"],
            "error": values["error"] or None,
            "run": values["run"],
            "threshold": float(values["threshold"]),
            "operating_point": values["operating_point"] or None,
        }

    @staticmethod
    def key(path: str) -> str:
        """The ``path`` cell this format writes for a file."""
        return printable(path)


class JsonLinesFormat:
    """One JSON object per line, nested like the API's image result."""

    header = ""

    def encode(self, row: dict[str, Any]) -> str:
        """One row as a JSON line (ASCII: a file name that is not valid UTF-8 stays writable)."""
        return json.dumps(row) + "\n"

    def decode(self, line: str) -> dict[str, Any]:
        """The row of one line."""
        row = json.loads(line)
        if not isinstance(row, dict) or not isinstance(row.get("path"), str):
            raise ValueError("not a result object with a path")
        return row

    @staticmethod
    def key(path: str) -> str:
        """The ``path`` value this format writes for a file."""
        return path


def results_format(path: Path) -> CsvFormat | JsonLinesFormat:
    """The format of an output file, by its suffix; ValueError for any other suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return CsvFormat()
    if suffix == ".jsonl":
        return JsonLinesFormat()
    raise ValueError(f"The output must end in .csv or .jsonl. Received: out={path}")


class ResultsWriter:
    """Appends rows to an output file, flushing after each batch."""

    def __init__(self, path: Path, file_format: CsvFormat | JsonLinesFormat):
        self.path = Path(path)
        self.format = file_format
        self._file = self.path.open("a", encoding="utf-8", newline="")
        if self._file.tell() == 0:
            self._file.write(file_format.header)
            self._file.flush()

    def key(self, path: str) -> str:
        """How this file names ``path`` (compare with :attr:`ExistingResults.paths`)."""
        return self.format.key(path)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append a batch of rows and hand them to the operating system (they survive a kill)."""
        self._file.write("".join(self.format.encode(row) for row in rows))
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_results(path: Path, provenance: Provenance) -> tuple[ResultsWriter, ExistingResults]:
    """A writer appending to ``path`` and what the file already holds.

    Cuts off a partial last line. Raises ValueError when the file was written for another run or
    threshold (naming both), or holds a line that is not a row of this format.
    """
    path = Path(path)
    file_format = results_format(path)
    existing = read_existing(path, file_format, provenance)
    return ResultsWriter(path, file_format), existing


def read_existing(
    path: Path, file_format: CsvFormat | JsonLinesFormat, provenance: Provenance
) -> ExistingResults:
    """The rows already in ``path`` (none when it does not exist), its partial last line cut off."""
    if not path.exists():
        return ExistingResults(frozenset(), 0, 0)
    with path.open("rb") as stream:
        content = stream.read()
    complete = content[: content.rfind(b"\n") + 1]
    if len(complete) < len(content):
        os.truncate(path, len(complete))
    lines = complete.decode("utf-8").split("\n")[:-1]
    if file_format.header:
        if lines and lines[0] + "\n" != file_format.header:
            raise ValueError(
                f"{path} does not have the columns of this version's results; score into another "
                f"--out. Received: header={lines[0][:200]!r}"
            )
        lines = lines[1:]
    paths, errors = set(), 0
    for number, line in enumerate(lines, start=2 if file_format.header else 1):
        try:
            row = file_format.decode(line)
        except (ValueError, csv.Error) as error:
            message = f"{path} line {number} is not a result row ({error}); it was not written here"
            raise ValueError(message) from error
        _check_provenance(path, row, provenance)
        paths.add(row["path"])
        errors += row.get("error") is not None
    return ExistingResults(frozenset(paths), errors, len(content) - len(complete))


def _check_provenance(path: Path, row: dict[str, Any], provenance: Provenance) -> None:
    threshold = row.get("threshold")
    same = (
        row.get("run") == provenance.run
        and row.get("operating_point") == provenance.operating_point
        and isinstance(threshold, (int, float))
        and math.isclose(threshold, provenance.threshold, rel_tol=1e-12, abs_tol=1e-12)
    )
    if not same:
        written = Provenance(str(row.get("run")), float(threshold or math.nan), row.get("operating_point"))
        raise ValueError(
            f"{path} holds results of {written.describe()}, not of {provenance.describe()}: score into "
            f"another --out, or with the same run and threshold. Received: run={provenance.run}"
        )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return printable(value) if isinstance(value, str) else value
