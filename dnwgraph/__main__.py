"""``python -m dnwgraph`` runs the command-line interface."""

from dnwgraph.cli import main

raise SystemExit(main())
