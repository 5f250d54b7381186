"""``python -m fairuse_opt.bench``: the study benchmark (same as ``fairuse bench``)."""

import sys

from ._cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
