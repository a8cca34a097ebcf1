"""Generate the assignments' student notebooks and autograder bundles with otter-grader.

Every notebook in ``notebooks/assignments/instructor/`` is an Otter Assign source notebook. For
each one, ``otter assign`` (otter-grader 7.0) writes a student notebook, where solutions become
``...`` stubs and hidden tests are removed, and an autograder zip that contains every test.
This script runs it and copies the two results to::

    notebooks/assignments/student/NAME.ipynb
    notebooks/assignments/autograder/NAME-autograder.zip

Otter Assign is not byte-for-byte reproducible, so two fixes follow it. It gives the cells it
adds (the init cell, check cells and answer cells) random ids, and this script renumbers every
cell id from the cell's position. It also puts the current time into the zip's file name and
into every zip entry, and this script writes the zip again with a fixed name, sorted entries and
the fixed date 1980-01-01. The output of a second run is therefore byte-identical.

Usage::

    .venv/bin/python tools/make_assignments.py             # writes into notebooks/assignments/
    .venv/bin/python tools/make_assignments.py --output DIR # writes DIR/student and DIR/autograder
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS_DIR = REPOSITORY_ROOT / "notebooks" / "assignments"
INSTRUCTOR_DIR = ASSIGNMENTS_DIR / "instructor"

# The earliest date a zip entry can carry, used for every entry so the bytes do not depend on the clock.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Gradescope runs these two entries as programs, so they keep the executable bit.
EXECUTABLE_ENTRIES = {"run_autograder", "setup.sh"}

logger = logging.getLogger(__name__)


def instructor_notebooks(source_dir: Path = INSTRUCTOR_DIR) -> list[Path]:
    """Return the instructor notebooks in ``source_dir``, sorted by name."""
    notebooks = sorted(source_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no instructor notebooks (*.ipynb) found in {source_dir}")
    return notebooks


def normalise_student_notebook(path: Path) -> None:
    """Replace every cell id with one made from the cell's position, in place."""
    notebook = nbformat.read(path, as_version=4)
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:03d}"
    nbformat.validate(notebook)
    nbformat.write(notebook, path)


def write_reproducible_zip(source: Path, target: Path) -> None:
    """Copy the zip ``source`` to ``target`` with sorted entries, a fixed date and fixed permissions."""
    with zipfile.ZipFile(source) as original:
        entries = {info.filename: original.read(info) for info in original.infolist() if not info.is_dir()}
    with zipfile.ZipFile(target, "w") as rewritten:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if Path(name).name in EXECUTABLE_ENTRIES else 0o644
            info.external_attr = (0o100000 | mode) << 16  # regular file with these permission bits
            rewritten.writestr(info, entries[name])


def generate(notebook: Path, output_dir: Path) -> tuple[Path, Path]:
    """Run Otter Assign on one instructor notebook and return the student notebook and the zip it wrote."""
    # Imported here so that `--help` works without otter-grader installed.
    from otter.assign import main as otter_assign

    student_dir = output_dir / "student"
    autograder_dir = output_dir / "autograder"
    student_dir.mkdir(parents=True, exist_ok=True)
    autograder_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="phplib-otter-") as scratch:
        result = Path(scratch) / "dist"
        # Otter does not run the instructor notebooks here, because A1 and A3 train for minutes.
        otter_assign(str(notebook), str(result), no_pdfs=True, no_run_tests=True)
        zips = sorted((result / "autograder").glob("*-autograder_*.zip"))
        if len(zips) != 1:
            raise RuntimeError(f"otter assign wrote {len(zips)} autograder zips for {notebook}, expected 1")

        student_notebook = student_dir / notebook.name
        shutil.copyfile(result / "student" / notebook.name, student_notebook)
        normalise_student_notebook(student_notebook)
        bundle = autograder_dir / f"{notebook.stem}-autograder.zip"
        write_reproducible_zip(zips[0], bundle)
    return student_notebook, bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=ASSIGNMENTS_DIR,
        help="folder that receives student/ and autograder/ (default: notebooks/assignments)",
    )
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="instructor notebooks to generate (default: every notebook in notebooks/assignments/instructor)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    notebooks = args.notebooks or instructor_notebooks()
    for notebook in notebooks:
        if not notebook.is_file():
            parser.error(f"instructor notebook {notebook} not found")
    for notebook in notebooks:
        student_notebook, bundle = generate(notebook.resolve(), args.output.resolve())
        logger.info("%s -> %s, %s", notebook.name, student_notebook, bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
