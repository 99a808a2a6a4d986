#!/usr/bin/env python3
"""Check the test-card constraints of a live database.

    python scripts/check_constraints.py [--database-url URL] [--json] [--per-subject 50] [--repair]

Reports: unique_test_per_purchase_subject present on (purchase_id, subject_id,
test_number) in that order; the old unique_test_per_purchase gone; no duplicate cards;
every purchased subject with its full set of cards; every unique constraint the models
declare present; the Alembic revision at head. With --repair it first creates the
missing cards of every purchased subject (only when every other check holds; nothing
else is changed; safe to run twice or concurrently) and reports the checks after it.
Exit 0 when all hold, 1 when something is wrong, 2 when the database cannot be
reached. Same as `flask check-constraints`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.config import load_config, normalise_database_url
from shared.constraint_check import run


def main(argv: list[str] | None = None) -> int:
    config = load_config()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=config["SQLALCHEMY_DATABASE_URI"], help="default: DATABASE_URL")
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument("--per-subject", type=int, default=config["MOCK_TESTS_PER_SUBJECT"])
    parser.add_argument("--repair", action="store_true", help="create the missing cards, then check again")
    args = parser.parse_args(argv)
    return run(normalise_database_url(args.database_url), args.per_subject, args.json, repair=args.repair)


if __name__ == "__main__":
    sys.exit(main())
