#!/usr/bin/env python3
"""Benchmark: the API under load beside its floors, served the same way, in the same run.

    python scripts/bench_api.py [--database-url URL] [--duration 10] [--connections 16]
                                [--workers 4] [--cache-redis-url URL]

Serves the app (on MariaDB, database exam_shop_bench_api, recreated, migrated and seeded
with the demo data; PAYMENT_PROVIDER=none) and scripts/bare_app.py with identical
gunicorn settings (the shipped gunicorn.conf.py, --workers, no worker recycling), then
loads each with wrk (Debian package `wrk`):

- GET /api/courses (uncached)            against /floor/courses: raw PyMySQL, count + page
- GET /api/courses with If-None-Match (304) against GET /bare: no database at all
- GET /api/mock-tests (1000 cards, 20 a page) against /floor/mock-tests: PyJWT, account and
  session in one statement, count + page, raw PyMySQL
- POST /api/purchases (a new subject each)  against POST /bare (no target; to watch)

It prints requests per second and p50/p99 latency of each, and each API figure as a
ratio to its floor measured in the same run. The machines are shared and noisy: read
the ratios. With --cache-redis-url (default: Redis db 3 on localhost; '' for none) the
catalog version comes from Redis through Flask-Caching, so a 304 needs no database.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from scripts.bench_support import BENCH_SECRET, app_settings, bench_customer, gunicorn, migrated_app  # noqa: E402

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/exam_shop_bench_api"
BUYERS = 120  # each buys single subjects; 120 x 31 demo subjects is plenty for one run


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _ms(value: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", value)
    if match is None:
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _latency(output: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}\s+(\S+)$", output, re.MULTILINE)
    return _ms(match.group(1)) if match else float("nan")


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> Result:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Result(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_latency(output, "50%"),
        p99_ms=_latency(output, "99%"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def prepare(database_url: str) -> tuple[str, list[tuple[str, int]]]:
    """Schema, demo data, a student owning the 20-subject bundle, and buyers with their subjects."""
    from sqlalchemy import select

    from shared.extensions import db
    from shared.models import Bundle, PurchaseType, Subject, User
    from shared.services.accounts import AuthService
    from shared.services.demo import DemoDataService
    from shared.services.purchases import PurchaseService

    app = migrated_app(database_url)
    with app.app_context():
        DemoDataService.seed()
        student = db.session.execute(select(User).where(User.email == "student@demo.test")).scalar_one()
        bundle = db.session.execute(select(Bundle.id).where(Bundle.slug == "load-test-20")).scalar_one()
        PurchaseService.purchase(
            AuthService.principal_of(student), {"purchase_type": PurchaseType.BUNDLE, "bundle_id": bundle}
        )
        student_token = AuthService.start_session(student)["access_token"]
        subjects = list(db.session.execute(select(Subject.id).order_by(Subject.id)).scalars())
        buyers = [bench_customer(f"buyer{n}@bench.test", f"+9199{n:08d}")[1] for n in range(BUYERS)]
        db.session.commit()
    return student_token, [(token, subject) for token in buyers for subject in subjects]


PURCHASE_SCRIPT = """
local orders = {%s}
local next_order = 0
local stride = 1
function setup(thread)
  thread:set("first", next_order)
  next_order = next_order + 1
end
function init(args)
  next_order = first
  stride = 2
end
request = function()
  local order = orders[(next_order %% #orders) + 1]
  next_order = next_order + stride
  local body = '{"purchase_type": "single_subject", "subject_id": ' .. order[2] .. '}'
  return wrk.format("POST", "/api/purchases", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. order[1]}, body)
end
"""

BARE_POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"purchase_type": "single_subject", "subject_id": 1}'
wrk.headers["Content-Type"] = "application/json"
"""

AUTH_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %s"
"""

CONDITIONAL_SCRIPT = """
wrk.headers["If-None-Match"] = '%s'
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--cache-redis-url", default="redis://127.0.0.1:6379/3")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2

    student_token, orders = prepare(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    (work / "auth.lua").write_text(AUTH_SCRIPT % student_token)
    (work / "bare_post.lua").write_text(BARE_POST_SCRIPT)
    lua_orders = ",".join(f'{{"{token}", {subject}}}' for token, subject in orders)
    (work / "purchase.lua").write_text(PURCHASE_SCRIPT % lua_orders)

    env = app_settings(
        args.database_url, CACHE_REDIS_URL=args.cache_redis_url, CACHE_KEY_PREFIX=f"bench-{os.getpid()}:"
    )
    floor_env = {"FLOOR_DATABASE_URL": args.database_url, "JWT_SECRET_KEY": BENCH_SECRET}
    app_server = gunicorn("app:app", 5601, args.workers, env, work / "app.log")
    bare_server = gunicorn("scripts.bare_app:app", 5602, args.workers, floor_env, work / "bare.log")
    try:
        api, bare = "http://127.0.0.1:5601", "http://127.0.0.1:5602"
        auth = {"Authorization": f"Bearer {student_token}"}
        # The floors answer the same pages as the app (1000 cards, the 4 demo courses).
        for path, floor, total in (
            ("/api/mock-tests", "/floor/mock-tests", 1000),
            ("/api/courses", "/floor/courses", 4),
        ):
            ours_body = requests.get(f"{api}{path}", headers=auth, timeout=10).json()
            floor_body = requests.get(f"{bare}{floor}", headers=auth, timeout=10).json()
            assert ours_body["total"] == floor_body["total"] == total
            assert [item["id"] for item in ours_body["items"]] == [item["id"] for item in floor_body["items"]]
        etag = requests.get(f"{api}/api/courses", timeout=10).headers["ETag"]
        assert requests.get(f"{api}/api/courses", headers={"If-None-Match": etag}, timeout=10).status_code == 304
        (work / "conditional.lua").write_text(CONDITIONAL_SCRIPT % etag)
        runs = [
            ("GET /api/courses", f"{api}/api/courses", None, f"{bare}/floor/courses", None),
            ("GET /api/courses 304", f"{api}/api/courses", work / "conditional.lua", f"{bare}/bare", None),
            (
                "GET /api/mock-tests",
                f"{api}/api/mock-tests",
                work / "auth.lua",
                f"{bare}/floor/mock-tests",
                work / "auth.lua",
            ),
            (
                "POST /api/purchases",
                f"{api}/api/purchases",
                work / "purchase.lua",
                f"{bare}/bare",
                work / "bare_post.lua",
            ),
        ]
        cache = args.cache_redis_url or "none"
        print(f"gunicorn.conf.py --workers {args.workers}, wrk -t2 -c{args.connections} -d{args.duration}s, MariaDB")
        print(f"catalog version cache: {cache}\n")
        print(
            f"{'endpoint':<22} {'req/s':>9} {'p50':>9} {'p99':>9} | {'floor req/s':>11} {'p50':>8} {'p99':>8} | ratio"
        )
        for name, url, script, bare_url, bare_script in runs:
            baseline = wrk(bare_url, args.duration, args.connections, bare_script)
            ours = wrk(url, args.duration, args.connections, script)
            ratio = ours.rps / baseline.rps
            print(
                f"{name:<22} {ours.rps:>9.0f} {ours.p50_ms:>7.2f}ms {ours.p99_ms:>7.2f}ms | "
                f"{baseline.rps:>11.0f} {baseline.p50_ms:>6.2f}ms {baseline.p99_ms:>6.2f}ms | {ratio:.2f}"
                + (f"  ({ours.non_2xx} non-2xx)" if ours.non_2xx else "")
            )
    finally:
        for server in (app_server, bare_server):
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
