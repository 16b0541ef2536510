"""`python -m qmtl.cli`: the same as the `qmtl` console script."""

from qmtl.cli.main import main

raise SystemExit(main())
