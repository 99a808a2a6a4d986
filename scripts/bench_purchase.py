#!/usr/bin/env python3
"""Benchmark: bundle purchases through the API against the raw-INSERT floor, same run.

    python scripts/bench_purchase.py [--database-url URL] [--repeat 15]

Runs on MariaDB, in a database of its own (default exam_shop_bench, created and
migrated when missing). For bundles of 1, 5 and 20 subjects it times POST
/api/purchases twice, in-process (Flask test client) and over HTTP (gunicorn with one
worker, PAYMENT_PROVIDER=none so that a purchase is fulfilled at once), each alternating
with the floor: one raw PyMySQL multi-row INSERT of the same card rows plus COMMIT,
sent from the client side. It prints each as a ratio to the floor, then the ratio of
our card creation (MockTestService.create_test_cards_for_purchase) to one INSERT
statement per row. Medians of --repeat runs. The machines are shared and noisy: read
the ratios.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pymysql
import requests
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from scripts.bench_support import app_settings, bench_customer, connect, create_database, gunicorn

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/exam_shop_bench"
SIZES = (1, 5, 20)
TARGET = 1.5
HTTP_PORT = 5611
CARD_COLUMNS = "(purchase_id, customer_id, subject_id, test_number, status, created_at, updated_at)"
CARD_INSERT = f"INSERT INTO mock_test_attempts {CARD_COLUMNS} VALUES "  # noqa: S608 - constant
ROW = "(%s,%s,%s,%s,%s,%s,%s)"


def timed_ms(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def paired_medians(first: Callable[[], Any], second: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Alternate the two so that the machine's noise falls on both alike; medians in ms."""
    first()
    second()  # warm-up
    samples = [(timed_ms(first), timed_ms(second)) for _ in range(repeat)]
    return statistics.median(a for a, _ in samples), statistics.median(b for _, b in samples)


class Fixtures:
    """Rows the runs consume: every purchase needs a fresh customer and fresh subjects."""

    def __init__(self, app: Flask) -> None:
        from shared.extensions import db

        self.app = app
        self.db = db
        self.serial = itertools.count(1)

    def customer(self) -> tuple[int, str]:
        stamp = f"{time.time_ns()}{next(self.serial)}"
        customer, token = bench_customer(f"bench{stamp}@example.com", f"+1{stamp[-12:]}")
        self.db.session.commit()
        return customer.id, token

    def bundle(self, size: int) -> tuple[int, list[int]]:
        from shared.models import Bundle, Course, Subject

        stamp = f"{time.time_ns()}{next(self.serial)}"
        course = Course(slug=f"bench-{stamp}", title="Bench", description="", is_active=True)
        self.db.session.add(course)
        self.db.session.flush()
        subjects = [
            Subject(course_id=course.id, name=f"S{i}", description="", price=Decimal("10.00"), is_active=True)
            for i in range(size)
        ]
        bundle = Bundle(slug=f"bench-{stamp}", title="B", description="", course_id=course.id, price=Decimal(9 * size))
        bundle.is_active = True
        bundle.subjects = subjects
        self.db.session.add(bundle)
        self.db.session.commit()
        return bundle.id, [subject.id for subject in subjects]

    def purchase_without_cards(self, subject_ids: list[int]) -> tuple[int, int]:
        """A purchase with its items but no cards yet: (purchase id, customer id)."""
        from shared.models import ItemState, Provider, Purchase, PurchaseItem, PurchaseStatus, PurchaseType
        from shared.models.base import utcnow

        customer_id, _ = self.customer()
        purchase = Purchase(
            customer_id=customer_id,
            purchase_type=PurchaseType.BUNDLE,
            total_cost=Decimal("1.00"),
            currency="INR",
            created_at=utcnow(),
            status=PurchaseStatus.PAID,
            provider=Provider.NONE,
            refund_due=Decimal("0.00"),
        )
        self.db.session.add(purchase)
        self.db.session.flush()
        self.db.session.execute(
            insert(PurchaseItem.__table__),
            [
                {
                    "purchase_id": purchase.id,
                    "customer_id": customer_id,
                    "subject_id": subject_id,
                    "price": Decimal("1.00"),
                    "created_at": purchase.created_at,
                    "state": ItemState.ACTIVE.value,
                    "active_customer_id": customer_id,
                }
                for subject_id in subject_ids
            ],
        )
        self.db.session.commit()
        return purchase.id, customer_id


def card_rows(purchase: tuple[int, int], subject_ids: list[int]) -> list[tuple[Any, ...]]:
    purchase_id, customer_id = purchase
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    return [(purchase_id, customer_id, s, n, "available", now, now) for s in subject_ids for n in range(1, 51)]


def raw_multi_row(connection: pymysql.Connection, rows: list[tuple[Any, ...]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(CARD_INSERT + ",".join([ROW] * len(rows)), [value for row in rows for value in row])
    connection.commit()


def raw_row_by_row(connection: pymysql.Connection, rows: list[tuple[Any, ...]]) -> None:
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute(CARD_INSERT + ROW, row)
    connection.commit()


Post = Callable[[dict[str, Any], str], tuple[int, dict[str, Any]]]


def in_process(app: Flask) -> Post:
    client = app.test_client()

    def post(body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        response = client.post("/api/purchases", json=body, headers={"Authorization": f"Bearer {token}"})
        return response.status_code, response.get_json()

    return post


def over_http(base_url: str) -> Post:
    session = requests.Session()

    def post(body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        response = session.post(
            f"{base_url}/api/purchases", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        return response.status_code, response.json()

    return post


def bench_purchases(post: Post, fixtures: Fixtures, raw: pymysql.Connection, size: int, repeat: int) -> float:
    bundles = [fixtures.bundle(size) for _ in range(repeat + 1)]
    buyers: Iterator[tuple[int, str]] = iter([fixtures.customer() for _ in range(repeat + 1)])
    for_sale = iter(bundles)
    floors = iter([card_rows(fixtures.purchase_without_cards(ids), ids) for _, ids in bundles])

    def purchase() -> None:
        _, token = next(buyers)
        bundle_id, _ = next(for_sale)
        status, body = post({"purchase_type": "bundle", "bundle_id": bundle_id}, token)
        assert status == 201, body
        assert body["cards_created"] == 50 * size

    api_ms, floor_ms = paired_medians(purchase, lambda: raw_multi_row(raw, next(floors)), repeat)
    print(f"{size:>8} {50 * size:>6} {api_ms:>11.2f} ms {floor_ms:>9.2f} ms {api_ms / floor_ms:>6.2f}x")
    return api_ms / floor_ms


def bench_card_creation(fixtures: Fixtures, raw: pymysql.Connection, size: int, repeat: int) -> None:
    from shared.models import Purchase
    from shared.services.cards import MockTestService

    ours = iter(
        [
            fixtures.db.session.get(Purchase, fixtures.purchase_without_cards(fixtures.bundle(size)[1])[0])
            for _ in range(repeat + 1)
        ]
    )
    per_row = iter(
        [
            card_rows(fixtures.purchase_without_cards(ids), ids)
            for ids in (fixtures.bundle(size)[1] for _ in range(repeat + 1))
        ]
    )
    ours_ms, per_row_ms = paired_medians(
        lambda: MockTestService.create_test_cards_for_purchase(next(ours)),
        lambda: raw_row_by_row(raw, next(per_row)),
        repeat,
    )
    print(
        f"\ncard creation of {50 * size} cards: ours {ours_ms:.2f} ms, "
        f"one INSERT per row {per_row_ms:.2f} ms; ours / row-by-row = {ours_ms / per_row_ms:.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    url = make_url(args.database_url)
    create_database(url, fresh=False)

    os.environ.setdefault("APP_ENV", "testing")
    from app import create_app

    settings = app_settings(args.database_url)
    app = create_app({**settings, "RATELIMIT_ENABLED": False})
    raw = connect(url, url.database)
    with app.app_context():
        upgrade()
        fixtures = Fixtures(app)
        log = Path(tempfile.mkdtemp(prefix="bench-purchase-")) / "gunicorn.log"
        server = gunicorn("app:app", HTTP_PORT, 1, settings, log)
        try:
            print(f"MariaDB database {url.database}; medians of {args.repeat} alternating runs")
            ratios = {}
            for mode, post in (
                ("in-process", in_process(app)),
                ("HTTP, 1 gunicorn worker", over_http(f"http://127.0.0.1:{HTTP_PORT}")),
            ):
                print(f"\n{mode}\n{'subjects':>8} {'cards':>6} {'API purchase':>14} {'raw INSERT':>12} {'ratio':>7}")
                ratios[mode] = {size: bench_purchases(post, fixtures, raw, size, args.repeat) for size in SIZES}
        finally:
            server.terminate()
            server.wait()
        bench_card_creation(fixtures, raw, 20, args.repeat)
    raw.close()
    for mode, by_size in ratios.items():
        verdict = "within" if by_size[20] <= TARGET else "NOT within"
        print(f"20-subject bundle purchase, {mode}: {by_size[20]:.2f}x the raw-INSERT floor ({verdict} {TARGET}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
