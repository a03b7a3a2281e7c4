"""``python -m tasks.edge_cases RUN_DIR [--only ID ...]``: re-run scenarios on a finished run."""

from tasks.edge_cases._stage import main

if __name__ == "__main__":
    raise SystemExit(main())
