"""``python -m fairuse_opt``: the ``fairuse`` command (see :mod:`fairuse_opt.cli`)."""

from .cli import main

raise SystemExit(main())
