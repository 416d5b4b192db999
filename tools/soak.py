"""``make soak``: the load test (tools/load.py) repeated for 30 minutes on one daemon, not in CI.

Each round is 100 concurrent uploads of mixed sizes (~300 MB) with every cap checked and 10 files
read back; the raw log (one line per upload, one per round with its peak memory) and the result
(JSON) go to docs/soak/. ``--duration`` shortens it (label the result accordingly: ``--label``).
"""

from __future__ import annotations

import sys

from tools import load


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    defaults = {"--duration": "1800", "--out": "docs/soak", "--label": "soak-30min"}
    for flag, value in defaults.items():
        if flag not in args:
            args += [flag, value]
    return load.main(args)


if __name__ == "__main__":
    sys.exit(main())
