"""Settings for all that pytest collects: the unit tests (tests/) and the notebooks (nbval).

This file sits at the repository root, pytest's rootdir (where pytest.ini is), so it applies to
``pytest``, ``pytest notebooks/NN_name.ipynb`` and ``cd notebooks && pytest NN_name.ipynb`` alike:
pytest loads the conftest.py files from the rootdir down to each path it collects, and
``tests/conftest.py`` is not on the way to ``notebooks/``. (No ``notebooks/conftest.py``: that
folder is what learners open.)
"""

from __future__ import annotations

#: Seconds nbval may wait for each output message of a cell that has run (nbval's default: 5).
NBVAL_OUTPUT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items: list) -> None:
    """Give every notebook cell collected by nbval an output timeout of ``NBVAL_OUTPUT_TIMEOUT_S``.

    nbval 0.11 runs a cell, waits for the kernel's reply (at most ``--nbval-cell-timeout`` s,
    pytest.ini), then reads the cell's output messages from the kernel's iopub channel, waiting at
    most ``output_timeout`` s for each one (the next output, or the final "idle").
    ``output_timeout`` is set to 5 in ``IPyNbCell.__init__`` as an instance attribute (setting it on
    the class has no effect, and there is no command-line option), so it is raised here, on each
    collected item. On a busy 2-core machine the iopub messages can trail the reply by more than 5 s
    (lesson 09's live training view sends many), and the cell then failed with "Timeout of 5 seconds
    exceeded waiting for output" although nothing was wrong.
    """
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: there are no notebook items
        return
    for item in items:
        if isinstance(item, IPyNbCell):
            item.output_timeout = max(item.output_timeout, NBVAL_OUTPUT_TIMEOUT_S)
