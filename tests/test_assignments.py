"""Course assignments: generated files up to date, no leaked solutions, and grading that can fail.

The instructor notebooks in notebooks/assignments/instructor are Otter Assign sources.
``tools/make_assignments.py`` turns them into the student notebooks and autograder zips stored
beside them. These tests regenerate both and compare bytes, check every student notebook for
solution text and hidden tests, and grade A2 with ``otter run`` as an instructor would.

Only A2 is executed and graded here, because it trains nothing and runs in a few seconds. A1 and
A3 train models on the toy world, which takes minutes. They are regenerated and checked for leaks,
and their instructor notebooks are run by hand as the assignments README describes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS_DIR = REPOSITORY_ROOT / "notebooks" / "assignments"
INSTRUCTOR_DIR = ASSIGNMENTS_DIR / "instructor"
INSTRUCTOR_NOTEBOOKS = sorted(INSTRUCTOR_DIR.glob("*.ipynb"))
A2 = "A2_forgetting_metrics"

pytest.importorskip("otter", reason="otter-grader is not installed; run `make setup`")


def load_generator():
    """Import tools/make_assignments.py, which is a script and not part of the phplib package."""
    spec = importlib.util.spec_from_file_location("make_assignments", REPOSITORY_ROOT / "tools" / "make_assignments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def marker(source: str) -> str:
    """Return the first line of a raw cell, which is how Otter Assign marks block boundaries."""
    return source.strip().splitlines()[0].strip() if source.strip() else ""


def split_instructor_notebook(path: Path) -> tuple[list[str], set[str], set[str]]:
    """Read an instructor notebook into its filled answer cells, solution lines and hidden-test lines.

    The answer cells are the code cells of the solution blocks, in order, with the solution
    markers removed, so they can replace the student notebook's stubs. Solution and hidden-test
    lines are returned only when they do not also occur in the parts students receive.
    """
    notebook = nbformat.read(path, as_version=4)
    answers: list[str] = []
    solution_lines: set[str] = set()
    hidden_lines: set[str] = set()
    public_lines: set[str] = set()
    block: list[str] = []
    for cell in notebook.cells:
        source = cell.source
        if cell.cell_type == "raw":
            first = marker(source)
            if first.startswith("# BEGIN "):
                block.append(first.removeprefix("# BEGIN ").split()[0])
            elif first.startswith("# END ") and block:
                block.pop()
            continue
        in_solution = bool(block) and block[-1] == "SOLUTION"
        in_tests = bool(block) and block[-1] == "TESTS"
        lines = [line.strip() for line in source.splitlines() if line.strip()]
        if in_solution and cell.cell_type == "markdown":
            solution_lines.update(lines)
        elif in_solution:
            filled, inside = [], False
            for line in source.splitlines():
                stripped = line.strip()
                if stripped == "# BEGIN SOLUTION":
                    inside = True
                elif stripped == "# END SOLUTION":
                    inside = False
                elif stripped.endswith("# SOLUTION"):
                    solution_lines.add(stripped)
                    filled.append(line.rsplit("# SOLUTION", 1)[0].rstrip())
                else:
                    if stripped:
                        (solution_lines if inside else public_lines).add(stripped)
                    filled.append(line)
            answers.append("\n".join(filled))
        elif in_tests and "hidden: true" in source:
            hidden_lines.update(line for line in lines if "TEST CONFIG" not in line and line != "hidden: true")
        else:
            public_lines.update(lines)
    return answers, solution_lines - public_lines, hidden_lines - public_lines


def fill_student_notebook(student: Path, answers: list[str], target: Path) -> nbformat.NotebookNode:
    """Write ``student`` with its code answer cells replaced by ``answers`` to ``target``."""
    notebook = nbformat.read(student, as_version=4)
    answer_cells = [
        cell for cell in notebook.cells
        if cell.cell_type == "code" and "otter_answer_cell" in cell.metadata.get("tags", [])
    ]
    assert len(answer_cells) == len(answers), f"{student.name}: {len(answer_cells)} answer cells, {len(answers)} solutions"
    for cell, answer in zip(answer_cells, answers):
        cell.source = answer
    nbformat.write(notebook, target)
    return notebook


def grade(submission: Path, output_dir: Path) -> dict[str, tuple[float, float]]:
    """Grade ``submission`` with `otter run` and the A2 autograder zip; return {question: (score, points)}."""
    bundle = ASSIGNMENTS_DIR / "autograder" / f"{A2}-autograder.zip"
    output_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY_ROOT), MPLBACKEND="Agg")
    completed = subprocess.run(
        [sys.executable, "-m", "otter", "run", "--no-logo", "-a", str(bundle), "-o", str(output_dir), str(submission)],
        capture_output=True, text=True, env=environment, timeout=180,
    )
    assert completed.returncode == 0, f"otter run failed:\n{completed.stdout}\n{completed.stderr}"
    report = json.loads((output_dir / "results.json").read_text())
    return {test["name"]: (test["score"], test["max_score"]) for test in report["tests"] if test.get("max_score") is not None}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with student/ and autograder/ freshly generated from the instructor notebooks."""
    output = tmp_path_factory.mktemp("assignments")
    assert load_generator().main(["--output", str(output)]) == 0
    return output


def test_instructor_notebooks_exist():
    names = [path.stem for path in INSTRUCTOR_NOTEBOOKS]
    assert A2 in names
    assert len(names) == 3, f"expected the three assignments A1, A2, A3, found {names}"


def test_generated_files_up_to_date(regenerated: Path):
    for kind, pattern in (("student", "*.ipynb"), ("autograder", "*.zip")):
        fresh = sorted(path.name for path in (regenerated / kind).glob(pattern))
        stored = sorted(path.name for path in (ASSIGNMENTS_DIR / kind).glob(pattern))
        assert fresh == stored, f"{kind}/ holds {stored} but the instructor notebooks generate {fresh}; run `make assignments`"
        for name in fresh:
            assert (regenerated / kind / name).read_bytes() == (ASSIGNMENTS_DIR / kind / name).read_bytes(), (
                f"notebooks/assignments/{kind}/{name} is out of date; run `make assignments` and commit the result"
            )


def test_generator_is_reproducible(regenerated: Path, tmp_path: Path):
    again = tmp_path / "again"
    assert load_generator().main(["--output", str(again), str(INSTRUCTOR_DIR / f"{A2}.ipynb")]) == 0
    for kind, name in (("student", f"{A2}.ipynb"), ("autograder", f"{A2}-autograder.zip")):
        assert (again / kind / name).read_bytes() == (regenerated / kind / name).read_bytes(), f"{kind}/{name} differs between runs"


def test_generator_rejects_missing_notebook(tmp_path: Path):
    with pytest.raises(SystemExit):
        load_generator().main(["--output", str(tmp_path), str(tmp_path / "missing.ipynb")])


@pytest.mark.parametrize("instructor", INSTRUCTOR_NOTEBOOKS, ids=lambda path: path.stem)
def test_student_version_leaks_nothing(instructor: Path):
    student = ASSIGNMENTS_DIR / "student" / instructor.name
    _, solution_lines, hidden_lines = split_instructor_notebook(instructor)
    assert solution_lines, f"{instructor.name} has no solution lines, so this test would check nothing"
    notebook = nbformat.read(student, as_version=4)
    student_lines = {line.strip() for cell in notebook.cells for line in cell.source.splitlines() if line.strip()}
    assert not solution_lines & student_lines, f"solution text in {student.name}: {sorted(solution_lines & student_lines)[:3]}"
    assert not hidden_lines & student_lines, f"hidden test code in {student.name}: {sorted(hidden_lines & student_lines)[:3]}"
    text = student.read_text()
    for forbidden in ("BEGIN SOLUTION", "END SOLUTION", "# SOLUTION", "BEGIN TEST CONFIG", "hidden: true", "RUBRIC"):
        assert forbidden not in text, f"{student.name} contains {forbidden!r}"
    stored_tests = notebook.metadata["otter"]["tests"]
    for question, test in stored_tests.items():
        for suite in test["suites"]:
            for case in suite["cases"]:
                assert not case["hidden"], f"{student.name} stores a hidden test case of {question}"


@pytest.mark.parametrize("instructor", INSTRUCTOR_NOTEBOOKS, ids=lambda path: path.stem)
def test_student_seeds_in_first_code_cell(instructor: Path):
    notebook = nbformat.read(ASSIGNMENTS_DIR / "student" / instructor.name, as_version=4)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    for call in ("random.seed(", "np.random.seed(", "otter.Notebook("):
        assert call in first_code.source, f"{instructor.name}: the first code cell does not call {call}"
    outputs = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.outputs]
    assert not outputs, f"{instructor.name}: the student notebook stores outputs, which depend on the machine"


def test_a2_instructor_notebook_passes_all_tests(tmp_path: Path):
    # Executing the instructor notebook runs every test cell, hidden ones included, as plain asserts.
    # It runs on a copy in tmp_path, because otter.Notebook reads the notebook file from the working
    # directory and writes a log file there.
    copy = tmp_path / f"{A2}.ipynb"
    copy.write_bytes((INSTRUCTOR_DIR / f"{A2}.ipynb").read_bytes())
    notebook = nbformat.read(copy, as_version=4)
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs if output.output_type == "error"]
    assert not errors, f"the A2 instructor notebook raised: {errors[0]['ename']}: {errors[0]['evalue']}"


def test_a2_unfilled_student_version_scores_zero(tmp_path: Path):
    scores = grade(ASSIGNMENTS_DIR / "student" / f"{A2}.ipynb", tmp_path / "report")
    assert sorted(scores) == [f"q{number}" for number in range(1, 9)]
    assert sum(points for _, points in scores.values()) == 12
    passed = {question: score for question, (score, _) in scores.items() if score > 0}
    assert not passed, f"tests pass on the unfilled stubs: {passed}"


def test_a2_filled_submission_gets_full_score(tmp_path: Path):
    answers, _, _ = split_instructor_notebook(INSTRUCTOR_DIR / f"{A2}.ipynb")
    submission = tmp_path / "submission" / f"{A2}.ipynb"
    submission.parent.mkdir()
    fill_student_notebook(ASSIGNMENTS_DIR / "student" / f"{A2}.ipynb", answers, submission)
    scores = grade(submission, tmp_path / "report")
    short = {question: score for question, (score, points) in scores.items() if score != points}
    assert not short, f"a submission of the instructor solutions lost points: {short}"


def test_a2_partly_wrong_submission_loses_points(tmp_path: Path):
    answers, _, _ = split_instructor_notebook(INSTRUCTOR_DIR / f"{A2}.ipynb")
    # a_mean borrowed from phplib (a hidden test rejects it), A_final as the diagonal's mean, and a
    # wrong name for question 5 that still passes its public format check. The rest stays right.
    borrowed_a_mean = (
        "from phplib.metrics.incremental import a_mean as library_a_mean\n\n\n"
        "def a_mean(R):\n    return library_a_mean(R)"
    )
    wrong = []
    for answer in answers:
        if answer.lstrip().startswith("def a_mean"):
            answer = borrowed_a_mean
        answer = answer.replace("np.mean(R[-1, :])", "np.mean(np.diag(R))")
        answer = answer.replace('most_forgotten = "AVE"', 'most_forgotten = "LLP"')
        wrong.append(answer)
    assert sum(new != old for new, old in zip(wrong, answers)) == 3, "the instructor solutions changed; update this test"
    submission = tmp_path / "submission" / f"{A2}.ipynb"
    submission.parent.mkdir()
    fill_student_notebook(ASSIGNMENTS_DIR / "student" / f"{A2}.ipynb", wrong, submission)
    scores = grade(submission, tmp_path / "report")

    assert 0 < scores["q1"][0] < scores["q1"][1], "a_mean that calls phplib should lose part of q1"
    assert scores["q2"][0] == 0, "a wrong a_final should fail every q2 test"
    assert 0 < scores["q5"][0] < scores["q5"][1], "a wrong name that passes the format check should lose part of q5"
    for question in ("q3", "q4", "q6", "q7", "q8"):
        assert scores[question][0] == scores[question][1], f"{question} should keep full marks"
