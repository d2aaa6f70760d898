"""``python -m chuteflow.cli``: the same as the ``chuteflow`` command."""

from chuteflow.cli import main

raise SystemExit(main())
