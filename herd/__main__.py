"""`python -m herd` is the same as the `herd` console script."""

from herd.cli import main

raise SystemExit(main())
