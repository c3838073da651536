"""``python -m pytest_corrsource``: the ``corrsource`` command."""

from pytest_corrsource.cli import main

raise SystemExit(main())
