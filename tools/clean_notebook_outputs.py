"""Strip image outputs and execution timing metadata from Jupyter notebooks, in place.

Text outputs stay, so cells marked ``# NBVAL_CHECK_OUTPUT`` keep the stored text that
``pytest --nbval-lax`` compares against. nbval 0.11 skips PNG and JPEG outputs when it
compares (unless run with ``--nbdime``), so dropping matplotlib's PNG images keeps the
stored notebooks small without weakening the tests.

Usage::

    .venv/bin/python tools/clean_notebook_outputs.py notebooks/00_setup.ipynb ...
    .venv/bin/python tools/clean_notebook_outputs.py --check notebooks/*.ipynb

``--check`` changes nothing and exits with status 1 when a notebook still contains
images or timing metadata.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

# Cell metadata keys that record when a cell ran. nbconvert's executor writes "execution",
# and the jupyter_contrib_nbextensions ExecuteTime extension writes "ExecuteTime".
TIMING_KEYS = ("execution", "ExecuteTime")


@dataclass
class CleanResult:
    """Counts of the entries removed from one notebook."""

    images: int = 0  # image MIME entries (image/png, image/svg+xml, ...) removed from outputs
    empty_outputs: int = 0  # outputs dropped because only images were in them
    timing_entries: int = 0  # cell metadata timing keys removed

    @property
    def changed(self) -> bool:
        return bool(self.images or self.empty_outputs or self.timing_entries)


def is_image_mime(mime: str) -> bool:
    return mime.startswith("image/")


def clean_notebook(notebook: nbformat.NotebookNode) -> CleanResult:
    """Remove image outputs and timing metadata from ``notebook`` in memory and return the counts."""
    result = CleanResult()
    for cell in notebook.cells:
        for key in TIMING_KEYS:
            if key in cell.metadata:
                del cell.metadata[key]
                result.timing_entries += 1
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type in ("display_data", "execute_result"):
                images = [mime for mime in output.data if is_image_mime(mime)]
                for mime in images:
                    del output.data[mime]
                    output.metadata.pop(mime, None)  # per-image size hints such as {"width": ...}
                result.images += len(images)
                if images and not output.data:
                    result.empty_outputs += 1
                    continue
            kept.append(output)
        cell.outputs = kept
    return result


def clean_file(path: Path, check: bool) -> CleanResult:
    """Clean one notebook file; write it back unless ``check`` is set or nothing changed."""
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    result = clean_notebook(notebook)
    if result.changed and not check:
        nbformat.write(notebook, path)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebook files (.ipynb) to clean in place")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit with status 1 if any notebook needs cleaning"
    )
    args = parser.parse_args(argv)

    missing = [str(path) for path in args.notebooks if not path.is_file()]
    if missing:
        parser.error(f"notebook not found: {', '.join(missing)}")

    needs_cleaning = False
    for path in args.notebooks:
        result = clean_file(path, check=args.check)
        verb = "would remove" if args.check else "removed"
        if result.changed:
            needs_cleaning = True
            print(
                f"{path}: {verb} {result.images} image(s), {result.empty_outputs} image-only output(s), "
                f"{result.timing_entries} timing entr{'y' if result.timing_entries == 1 else 'ies'}"
            )
        else:
            print(f"{path}: clean")
    return 1 if args.check and needs_cleaning else 0


if __name__ == "__main__":
    sys.exit(main())
