"""``python -m fairuse_opt``: the ``fairuse`` command (see :mod:`fairuse_opt.cli`)."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line itself loads: no traceback
    print("fairuse: error: interrupted; nothing was written", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
