"""Read ``attributes_XX.csv`` robustly and rebuild it from file names.

The official files list ``<machine>/<split>/<file>,<key1>,<value1>,<key2>,<value2>,...`` under a
``file_name,d1p,d1v,...`` header. Real ones are malformed in places: ragged rows, rows with
more or fewer pairs than the header, odd cell counts, stray blank lines. The reader keeps every
row it can decode and reports every row it cannot; the rebuild writes a clean file from the
names of the files that are really there, reporting each row it adds, changes or drops.

CLI::

    python -m asd.data.attributes check   <machine_dir>
    python -m asd.data.attributes rebuild <machine_dir> [--dry-run]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from asd.data.filenames import AUDIO_SUFFIXES, FileNameError, format_attributes, parse_file_name
from asd.data.index import audio_files
from asd.files import write_text

SPLITS = ("train", "test", "supplemental")


@dataclass
class AttributeTable:
    """Decoded rows (file name -> ordered pairs) and the problems found."""

    rows: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_attributes_csv(path: str | Path) -> AttributeTable:
    """Every decodable row; a UTF-8 byte-order mark is skipped, a ``;``-delimited file is read as
    such and reported (the official files use ``,``), a row with a file name only is kept and reported."""
    path = Path(path)
    table = AttributeTable()
    # utf-8-sig: spreadsheet programs write a byte-order mark, which would hide the header
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    first_line = text.split("\n", 1)[0]
    delimiter = ","
    if ";" in first_line and "," not in first_line:
        delimiter = ";"
        table.problems.append(f"{path}: cells are separated by ';' (the official files use ','); read with ';'")
    for line_no, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        if line_no == 1 and cells[0] == "file_name":
            continue
        name = Path(cells[0]).name
        values = cells[1:]
        where = f"{path}:{line_no}"
        if not name.lower().endswith(AUDIO_SUFFIXES):
            table.problems.append(f"{where}: first cell {cells[0]!r} is not an audio file ({', '.join(AUDIO_SUFFIXES)}); row skipped")
            continue
        if not values:
            table.problems.append(f"{where}: {name} has a file name only, no attribute cells")
        if len(values) % 2:
            table.problems.append(
                f"{where}: {len(values)} attribute cells for {name} (not key/value pairs); "
                "kept the complete pairs"
            )
            values = values[:-1]
        pairs = tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))
        if name in table.rows and table.rows[name] != pairs:
            table.problems.append(f"{where}: {name} listed again with other attributes; kept the first")
            continue
        table.rows.setdefault(name, pairs)
    return table


def check_attributes_csv(machine_directory: str | Path, csv_name: str = "attributes_00.csv") -> AttributeTable:
    """The CSV's rows and problems, plus every audio file of the machine folder that has no row."""
    directory = Path(machine_directory)
    table = read_attributes_csv(directory / csv_name)
    for split in SPLITS:
        for path in audio_files(directory / split):
            if path.name not in table.rows:
                table.problems.append(f"{path}: audio file without a row in {csv_name}")
    return table


def attributes_from_names(machine_directory: str | Path) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """file name -> (``<machine>/<split>/<file>``, pairs) for every audio file under the machine folder."""
    directory = Path(machine_directory)
    entries = {}
    for split in SPLITS:
        for path in audio_files(directory / split):
            entries[path.name] = (f"{directory.name}/{split}/{path.name}", parse_file_name(path).attributes)
    return entries


def _format(pairs) -> str:
    return format_attributes(pairs) or "(none)"


def rebuild_attributes_csv(
    machine_directory: str | Path, csv_name: str = "attributes_00.csv", dry_run: bool = False
) -> list[str]:
    """Rewrite ``<machine_dir>/<csv_name>`` from the file names; return one line per change.

    Where a name carries no attributes (concealed, ``noAttribute``) the original row is kept,
    since it may be the only record of them.
    """
    directory = Path(machine_directory)
    csv_path = directory / csv_name
    original = read_attributes_csv(csv_path) if csv_path.is_file() else AttributeTable()
    changes = list(original.problems)
    rows = []
    for name, (relative, pairs) in attributes_from_names(directory).items():
        old = original.rows.get(name)
        if not pairs and old:
            pairs = old
        if old is None:
            changes.append(f"added {name}: {_format(pairs)}")
        elif old != pairs:
            changes.append(f"changed {name}: {_format(old)} -> {_format(pairs)}")
        rows.append((relative, pairs))
    present = {Path(r).name for r, _ in rows}
    changes += [f"dropped {name}: no such file" for name in original.rows if name not in present]
    if not rows:
        raise FileNotFoundError(f"{directory}: no audio files ({', '.join(AUDIO_SUFFIXES)}) under {'/, '.join(SPLITS)}/")
    if not dry_run:
        width = max(len(p) for _, p in rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file_name"] + [f"d{i + 1}{part}" for i in range(width) for part in ("p", "v")])
        for relative, pairs in rows:
            writer.writerow([relative] + [cell for pair in pairs for cell in pair])
        write_text(csv_path, buffer.getvalue())
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd.data.attributes", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["check", "rebuild"])
    parser.add_argument("machine_dir", type=Path, help="e.g. data/dcase2024t2/dev_data/raw/fan")
    parser.add_argument("--csv-name", default="attributes_00.csv")
    parser.add_argument("--dry-run", action="store_true", help="rebuild: report changes, write nothing")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            table = check_attributes_csv(args.machine_dir, args.csv_name)
            report = table.problems
            print(f"{len(table.rows)} rows readable, {len(report)} problems")
        else:
            report = rebuild_attributes_csv(args.machine_dir, args.csv_name, dry_run=args.dry_run)
            print(f"{len(report)} changes" + (" (dry run, nothing written)" if args.dry_run else ""))
    except (FileNotFoundError, FileNameError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in report:
        print(f"  {line}")
    return 1 if args.command == "check" and report else 0


if __name__ == "__main__":
    sys.exit(main())
