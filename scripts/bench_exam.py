#!/usr/bin/env python3
"""Benchmark: exam day, a national mock test, against the locked-update floor, same run.

    python scripts/bench_exam.py [--database-url URL] [--students 200] [--duration 45]
                                 [--save-every 5] [--tabs 2] [--questions 30] [--workers 4]
                                 [--full-sheet]

Builds a database of its own (default exam_shop_bench_exam, dropped, created and migrated):
one subject with a bank of 2 x --questions questions of the three types under a JEE-style
pattern, paper 1 composed, and two cohorts of --students students who each own the
subject (PAYMENT_PROVIDER=none) and hold a minted token. Serves the app and
scripts/bare_app.py with the shipped gunicorn.conf.py and --workers workers, then drives
each with the same locust scenario (scripts/exam_locustfile.py, headless, one cohort
each): every student starts card 1 at once, saves answers every --save-every seconds
(--tabs saves at once, other questions each, so that saves to one card run concurrently),
and submits in the last fifth of --duration seconds. The app's saves ask
`Prefer: return=minimal` (204, as the floor answers only what it saved); --full-sheet
measures the default answer instead, the whole sheet.

It prints requests per second, p50 and p99 of the starts, saves and submits, and each as
a ratio to the floor: ours / floor for req/s, floor / ours for latencies (1.0 = as fast
as the floor; target >= 0.5). Then it reads every card from the database: each holds the
answer its student saved last to every question. Exits 1 on any failed request, lost
answer or card left unsubmitted. The machines are shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from sqlalchemy.engine import URL, make_url  # noqa: E402

from scripts.bench_support import BENCH_SECRET, app_settings, bench_customer, connect, gunicorn, migrated_app  # noqa: E402

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/exam_shop_bench_exam"
TEST_NUMBER = 1
TARGET = 0.5
NAMES = ("start", "save", "submit")


@dataclass
class Exam:
    questions: list[dict[str, Any]]  # {id, type, options}: what the scenario answers
    cohorts: dict[str, list[dict[str, Any]]]  # "floor" / "app" -> [{token, card_id}]


def question_items(count: int) -> list[dict[str, Any]]:
    """A bank of the three types, as the import schema loads them."""
    from shared.models import Difficulty, QuestionType

    items = []
    for n in range(count):
        item: dict[str, Any] = {
            "text": f"Question {n + 1}",
            "explanation": f"Because of rule {n + 1}.",
            "difficulty": list(Difficulty)[n % 3],
            "is_active": True,
        }
        if n % 3 == 0:
            item.update(type=QuestionType.SINGLE, options=["A", "B", "C", "D"], correct_option=n % 4)
        elif n % 3 == 1:
            item.update(type=QuestionType.MULTIPLE, options=["A", "B", "C", "D"], correct_options=[0, n % 4])
            item["correct_options"] = sorted(set(item["correct_options"]))
        else:
            item.update(type=QuestionType.NUMERICAL, answer=Decimal(n) / 4, decimal_places=2)
        items.append(item)
    return items


def prepare(database_url: str, students: int, questions: int) -> Exam:
    """Schema, a subject with its bank and pattern, paper 1 composed, and two cohorts owning it."""
    from sqlalchemy import select

    from shared.extensions import db
    from shared.models import Course, ExamPattern, MockTestAttempt, PaperQuestion, PurchaseType, Subject, User
    from shared.services.accounts import AuthService
    from shared.services.cards import PaperService
    from shared.services.purchases import PurchaseService
    from shared.services.questions import QuestionService

    app = migrated_app(database_url)
    with app.app_context():
        course = Course(slug="national-mock", title="National mock test", description="", is_active=True)
        db.session.add(course)
        db.session.flush()
        subject = Subject(course_id=course.id, name="JEE Main", description="", price=Decimal("10.00"), is_active=True)
        db.session.add(subject)
        db.session.flush()
        db.session.add(
            ExamPattern(
                subject_id=subject.id,
                questions_per_paper=questions,
                duration_minutes=180,
                **{f"{kind}_correct": Decimal(4) for kind in ("single", "multiple", "numerical")},
                single_wrong=Decimal(-1),
                multiple_wrong=Decimal(-2),
                numerical_wrong=Decimal(0),
                **{f"{kind}_unanswered": Decimal(0) for kind in ("single", "multiple", "numerical")},
                multiple_partial=Decimal(1),
            )
        )
        db.session.commit()
        QuestionService.import_questions(subject.id, question_items(2 * questions))
        paper_id = PaperService.compose(subject.id, TEST_NUMBER, 1)
        paper = db.session.execute(
            select(PaperQuestion.question_id, PaperQuestion.type, PaperQuestion.option_count)
            .where(PaperQuestion.paper_id == paper_id)
            .order_by(PaperQuestion.position)
        ).all()
        cohorts: dict[str, list[dict[str, Any]]] = {}
        for cohort_number, cohort in enumerate(("floor", "app")):
            tokens, users = {}, []
            for n in range(students):
                customer, token = bench_customer(f"{cohort}{n}@exam.test", f"+91{cohort_number + 7}{n:09d}")
                tokens[customer.id] = token
                users.append(customer.user_id)
            db.session.commit()
            for user_id in users:
                PurchaseService.purchase(
                    AuthService.principal_of(db.session.get(User, user_id)),
                    {"purchase_type": PurchaseType.SINGLE_SUBJECT, "subject_id": subject.id},
                )
            cards = db.session.execute(
                select(MockTestAttempt.customer_id, MockTestAttempt.id).where(
                    MockTestAttempt.customer_id.in_(tokens), MockTestAttempt.test_number == TEST_NUMBER
                )
            ).all()
            cohorts[cohort] = [{"token": tokens[customer_id], "card_id": card_id} for customer_id, card_id in cards]
    return Exam(
        questions=[{"id": qid, "type": kind.value, "options": options} for qid, kind, options in paper],
        cohorts=cohorts,
    )


def run_locust(base_url: str, prefix: str, students: list[dict[str, Any]], exam: Exam, args: Any, work: Path) -> dict:
    """One headless locust run of the scenario; its figures and the answers saved last."""
    config, result = work / f"{prefix.strip('/').replace('/', '-')}.json", work / "result.json"
    result.unlink(missing_ok=True)
    config.write_text(
        json.dumps(
            {
                "prefix": prefix,
                "questions": exam.questions,
                "students": students,
                "students_count": len(students),
                "duration": args.duration,
                "save_every": args.save_every,
                "tabs": args.tabs,
                "answers_per_save": args.answers_per_save,
                "prefer_minimal": not args.full_sheet,
            }
        )
    )
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f", str(ROOT / "scripts" / "exam_locustfile.py"),
        "--headless", "--only-summary", "--loglevel", "WARNING",
        "--host", base_url,
        "--users", str(len(students)), "--spawn-rate", str(len(students)),
        # A saturated server stretches the exam; locust quits as soon as everybody submitted.
        "--run-time", f"{3 * args.duration + 60}s", "--stop-timeout", "10",
    ]  # fmt: skip
    env = {**os.environ, "EXAM_BENCH_CONFIG": str(config), "EXAM_BENCH_RESULT": str(result)}
    log = work / f"locust-{prefix.strip('/').replace('/', '-')}.log"
    with log.open("wb") as output:
        subprocess.run(
            command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=3 * args.duration + 240
        )
    if not result.exists():
        raise RuntimeError(f"locust wrote no result; see {log}")
    return json.loads(result.read_text())


def lost_answers(url: URL, last_saved: dict[str, dict[str, Any]]) -> list[str]:
    """Every (card, question) whose stored answer is not the one its student saved last."""
    if not last_saved:
        return []
    card_ids = [int(card_id) for card_id in last_saved]
    with connect(url, url.database) as raw, raw.cursor() as cursor:
        cursor.execute(
            "SELECT a.card_id, q.question_id, q.type, a.choice_mask, a.value FROM attempt_answers a "
            "JOIN mock_test_attempts c ON c.id = a.card_id "
            "JOIN paper_questions q ON q.paper_id = c.paper_id AND q.position = a.position "
            "WHERE a.card_id IN %s",  # PyMySQL renders a list as (1, 2, ...)
            (card_ids,),
        )
        stored = {(str(card), str(question)): (kind, mask, value) for card, question, kind, mask, value in cursor}
    lost = []
    for card_id, answers in last_saved.items():
        for question_id, answer in answers.items():
            kind, mask, value = stored.get((card_id, question_id), (None, None, None))
            if answer is None:
                expected: tuple[Any, Any] = (None, None)
            elif kind == "numerical":
                expected = (None, Decimal(answer).quantize(Decimal("0.000001")))
            elif kind == "single":
                expected = (1 << answer, None)
            else:
                expected = (sum(1 << option for option in answer) or None, None)
            if (mask, value) != expected:
                lost.append(f"card {card_id}, question {question_id}: saved {answer!r}, stored {(mask, value)}")
    return lost


def server_cpu_seconds(server: subprocess.Popen[bytes]) -> float:
    """CPU time of a gunicorn: its master, its workers, and the workers it recycled and reaped."""
    master = psutil.Process(server.pid)
    times = master.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for worker in master.children():
        with contextlib.suppress(psutil.NoSuchProcess):  # recycled meanwhile
            total += sum(worker.cpu_times()[:2])
    return total


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ratio(ours: float, floor: float) -> float:
    return ours / floor if floor and not math.isnan(ours) and not math.isnan(floor) else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--students", type=int, default=200, help="students in each cohort (floor, app)")
    parser.add_argument("--duration", type=int, default=45, help="seconds of the exam (submits in the last fifth)")
    parser.add_argument("--save-every", type=float, default=5.0, help="seconds between a student's saves (mean)")
    parser.add_argument("--tabs", type=int, default=2, help="concurrent saves to one card each time")
    parser.add_argument("--answers-per-save", type=int, default=2)
    parser.add_argument("--questions", type=int, default=30, help="questions per paper")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--full-sheet", action="store_true", help="saves get the whole sheet back (no Prefer)")
    args = parser.parse_args()
    url = make_url(args.database_url)

    started = time.monotonic()
    exam = prepare(args.database_url, args.students, args.questions)
    print(
        f"set up in {time.monotonic() - started:.0f} s: 2 x {args.students} students, {len(exam.questions)} questions"
    )
    env = app_settings(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="bench-exam-"))
    app_port, floor_port = free_port(), free_port()
    app_server = gunicorn("app:app", app_port, args.workers, env, work / "app.log")
    floor_server = gunicorn(
        "scripts.bare_app:app",
        floor_port,
        args.workers,
        {"FLOOR_DATABASE_URL": args.database_url, "JWT_SECRET_KEY": BENCH_SECRET},
        work / "bare.log",
    )
    try:
        cpu = {side: server_cpu_seconds(server) for side, server in (("floor", floor_server), ("ours", app_server))}
        floor = run_locust(
            f"http://127.0.0.1:{floor_port}", "/floor/mock-tests", exam.cohorts["floor"], exam, args, work
        )
        cpu["floor"] = server_cpu_seconds(floor_server) - cpu["floor"]
        ours = run_locust(f"http://127.0.0.1:{app_port}", "/api/mock-tests", exam.cohorts["app"], exam, args, work)
        cpu["ours"] = server_cpu_seconds(app_server) - cpu["ours"]
    finally:
        for server in (app_server, floor_server):
            server.terminate()
            server.wait(timeout=30)

    load = os.getloadavg()
    print(
        f"\ngunicorn.conf.py --workers {args.workers}, MariaDB {url.database}; locust: {args.students} students "
        f"each, {args.duration} s, a save every ~{args.save_every:g} s x {args.tabs} tabs; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n"
    )
    print(
        f"{'':<7} {'requests':>8} {'req/s':>7} {'p50':>8} {'p99':>8} | {'floor req/s':>11} {'p50':>8} {'p99':>8}"
        " | ratios: req/s  p50   p99"
    )
    for name in (*NAMES, "total"):
        o, f = ours[name], floor[name]
        print(
            f"{name:<7} {o['requests']:>8} {o['rps']:>7.1f} {o['p50_ms']:>6.0f}ms {o['p99_ms']:>6.0f}ms | "
            f"{f['rps']:>11.1f} {f['p50_ms']:>6.0f}ms {f['p99_ms']:>6.0f}ms | "
            f"{ratio(o['rps'], f['rps']):>12.2f} {ratio(f['p50_ms'], o['p50_ms']):>5.2f} "
            f"{ratio(f['p99_ms'], o['p99_ms']):>5.2f}"
        )
    per_request = {
        side: 1000 * cpu[side] / max(1, result["total"]["requests"])
        for side, result in (("ours", ours), ("floor", floor))
    }
    print(
        f"\nserver CPU per request (gunicorn processes, all requests): ours {per_request['ours']:.1f} ms, "
        f"floor {per_request['floor']:.1f} ms; floor / ours = {ratio(per_request['floor'], per_request['ours']):.2f}"
    )
    print()
    for name in ("save", "submit"):
        o, f = ours[name], floor[name]
        figures = (ratio(o["rps"], f["rps"]), ratio(f["p50_ms"], o["p50_ms"]), ratio(f["p99_ms"], o["p99_ms"]))
        verdict = "within" if all(figure >= TARGET for figure in figures) else "NOT within"
        print(
            f"{name} / floor: throughput {figures[0]:.2f}, p50 {figures[1]:.2f}, p99 {figures[2]:.2f}"
            f" ({verdict} the target >= {TARGET})"
        )

    problems = []
    for side, result in (("floor", floor), ("ours", ours)):
        problems += [f"{side}: {error}" for error in result["errors"]]
        if result["submitted"] != args.students:
            problems.append(f"{side}: {args.students - result['submitted']} cards were not submitted")
        problems += [f"{side}: {lost}" for lost in lost_answers(url, result["last_saved"])]
    errors = ours["error_count"] + floor["error_count"]
    saved = sum(len(answers) for answers in ours["last_saved"].values())
    print(f"\nerrors: {errors} (ours {ours['error_count']}, floor {floor['error_count']})")
    print(f"answers checked in the database: {saved} of ours, every one as its student saved it last: {not problems}")
    for problem in problems[:20]:
        print(f"  {problem}")
    return 1 if problems or errors else 0


if __name__ == "__main__":
    sys.exit(main())
