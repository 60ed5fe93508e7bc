"""``python -m llm_course`` is the ``llm-course`` command."""

from llm_course.cli import main

raise SystemExit(main())
