"""The locust scenario of scripts/bench_exam.py (run by it; not on its own): one student a user.

Each student starts its card, saves answers every few seconds (`tabs` saves at once, as
from two open tabs, each with other questions, so that concurrent saves hit one card),
and submits in the last part of the exam with a last answer or two. The same scenario
drives the app (`/api/mock-tests`) and the floor (`/floor/mock-tests` of scripts/bare_app.py).

Every request goes on a new connection (`Connection: close`): a POST sent on a kept-alive
connection that the server closes at that instant (gunicorn's keepalive of 5 s, a worker
recycled after max_requests) fails without a retry, which is not what this measures.

Reads its settings from the JSON file named by EXAM_BENCH_CONFIG; on quitting writes the
figures and, per card, the answer each question was last saved with to EXAM_BENCH_RESULT.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

CONFIG: dict[str, Any] = json.loads(Path(os.environ["EXAM_BENCH_CONFIG"]).read_text())
PREFIX: str = CONFIG["prefix"]
QUESTIONS: list[dict[str, Any]] = CONFIG["questions"]
STUDENTS = iter(CONFIG["students"])
# card id -> question id -> the answer its last successful save (or the submit) carried
LAST_SAVED: dict[str, dict[str, Any]] = {}
SUBMITTED: set[int] = set()
METHODS = {"start": "POST", "save": "PUT", "submit": "POST"}


def an_answer(question: dict[str, Any], rng: random.Random) -> Any:
    """An answer in the question type's shape; now and then null (clears it)."""
    if rng.random() < 0.05:
        return None
    if question["type"] == "single":
        return rng.randrange(question["options"])
    if question["type"] == "multiple":
        return sorted(rng.sample(range(question["options"]), rng.randint(1, question["options"])))
    return f"{rng.uniform(-100, 100):.2f}"


def an_entry(question: dict[str, Any], rng: random.Random) -> tuple[Any, Any]:
    """(what the request carries, the answer it saves): the bare answer or the full object."""
    answer = an_answer(question, rng)
    if rng.random() < 0.5:
        return answer, answer
    return {"answer": answer, "marked_for_review": rng.random() < 0.2, "time_spent_seconds": rng.randint(1, 90)}, answer


class Student(FastHttpUser):
    wait_time = between(CONFIG["save_every"] * 0.5, CONFIG["save_every"] * 1.5)

    def on_start(self) -> None:
        student = next(STUDENTS)
        self.card = student["card_id"]
        self.headers = {"Authorization": f"Bearer {student['token']}", "Connection": "close"}
        self.save_headers = self.headers | ({"Prefer": "return=minimal"} if CONFIG["prefer_minimal"] else {})
        self.rng = random.Random(self.card)  # noqa: S311 - answers, not secrets
        duration = CONFIG["duration"]
        # Everybody submits in the last fifth of the exam.
        self.submit_at = time.monotonic() + duration * self.rng.uniform(0.8, 0.97)
        self.saved: dict[str, Any] = LAST_SAVED.setdefault(str(self.card), {})
        with self.client.post(
            f"{PREFIX}/{self.card}/start", headers=self.headers, name="start", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"start: {response.status_code} {(response.text or str(response.error))[:300]}")
                raise StopUser

    def _put(self, body: dict[str, Any], saves: dict[str, Any]) -> None:
        with self.client.put(
            f"{PREFIX}/{self.card}/answers", json=body, headers=self.save_headers, name="save", catch_response=True
        ) as response:
            if response.status_code in (200, 204):
                self.saved.update(saves)
            else:
                response.failure(f"save: {response.status_code} {(response.text or str(response.error))[:300]}")

    @task
    def save(self) -> None:
        if time.monotonic() >= self.submit_at:
            self.submit()
        tabs, per_save = CONFIG["tabs"], CONFIG["answers_per_save"]
        chosen = self.rng.sample(QUESTIONS, min(len(QUESTIONS), tabs * per_save))
        saves = []
        for tab in range(tabs):
            body: dict[str, Any] = {}
            answers: dict[str, Any] = {}
            for question in chosen[tab * per_save : (tab + 1) * per_save]:
                body[str(question["id"])], answers[str(question["id"])] = an_entry(question, self.rng)
            if body:
                saves.append(gevent.spawn(self._put, {"answers": body}, answers))
        gevent.joinall(saves)

    def submit(self) -> None:
        last = {}
        for question in self.rng.sample(QUESTIONS, min(2, len(QUESTIONS))):
            last[str(question["id"])] = an_answer(question, self.rng)
        with self.client.post(
            f"{PREFIX}/{self.card}/submit", json={"answers": last}, headers=self.headers, name="submit",
            catch_response=True,
        ) as response:  # fmt: skip
            if response.status_code == 200 and response.json().get("status") == "completed":
                self.saved.update(last)
                SUBMITTED.add(self.card)
            else:
                response.failure(f"submit: {response.status_code} {(response.text or str(response.error))[:300]}")
        if len(SUBMITTED) == CONFIG["students_count"] and self.environment.runner is not None:
            gevent.spawn_later(0.1, self.environment.runner.quit)  # everybody is done
        raise StopUser


@events.quitting.add_listener
def write_result(environment: Environment, **_: Any) -> None:
    stats = environment.stats

    def figures(name: str | None) -> dict[str, Any]:
        entry = stats.total if name is None else stats.entries.get((name, METHODS[name]))
        if entry is None or entry.num_requests == 0:
            return {"requests": 0, "failures": 0, "rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
        return {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "rps": entry.total_rps,
            "p50_ms": entry.get_response_time_percentile(0.5),
            "p99_ms": entry.get_response_time_percentile(0.99),
        }

    result = {
        "total": figures(None),
        **{name: figures(name) for name in METHODS},
        "errors": [f"{e.occurrences}x {e.method} {e.name}: {e.error}" for e in stats.errors.values()]
        + [f"{e['count']}x {e['msg']}" for e in (environment.runner.exceptions.values() if environment.runner else ())],
        "error_count": stats.total.num_failures
        + sum(e["count"] for e in (environment.runner.exceptions.values() if environment.runner else ())),
        "submitted": len(SUBMITTED),
        "last_saved": LAST_SAVED,
    }
    Path(os.environ["EXAM_BENCH_RESULT"]).write_text(json.dumps(result))
