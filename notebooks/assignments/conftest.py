"""Keep `pytest notebooks --nbval-lax` (run by `make test`) away from the assignment notebooks.

Student notebooks contain `...` stubs, so running them top to bottom fails by design, and the
instructor notebooks' tests include hidden ones. tests/test_assignments.py executes and grades
these notebooks itself.
"""

collect_ignore_glob = ["*.ipynb", "*/*.ipynb"]
