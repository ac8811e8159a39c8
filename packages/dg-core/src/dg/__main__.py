"""`python -m dg ...`: the dg command line (see dg.core.cli)."""

from dg.core.cli import main

raise SystemExit(main())
