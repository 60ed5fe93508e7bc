"""llm_course: the course's instructor and maintainer tools (learners import ``lessons_lib``).

One console script, ``llm-course`` (or ``python -m llm_course``), with three subcommands:

* ``llm-course build NN [NN ...]`` / ``--all``: build ``notebooks/NN_*.ipynb`` from
  ``notebooks/src/NN_*.py`` and execute it, storing the outputs (:mod:`llm_course.build`);
* ``llm-course run``: execute every notebook in a fresh kernel and report pass/fail, wall time and
  peak memory (:mod:`llm_course.runner`);
* ``llm-course readme [report.json]``: rewrite the README's lesson table from that report
  (:mod:`llm_course.readme`).

Importing this package (and running ``llm-course --help``) loads neither TensorFlow nor
``lessons_lib``; the Jupyter libraries are imported by the subcommand that needs them.
"""
