"""`python -m bench SCENARIO …`."""

from bench.cli import main

raise SystemExit(main())
