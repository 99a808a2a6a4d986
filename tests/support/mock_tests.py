"""Question banks and test cards for tests of the mock tests."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from shared.extensions import db
from shared.models import Question


def add_questions(subject_id: int, count: int, start: int = 1) -> list[Question]:
    questions = [
        Question(
            subject_id=subject_id,
            text=f"Question {n}: which option is right?",
            options=["A", "B", "C", "D"],
            correct_option=n % 4,
            explanation=f"Because option {n % 4} is the key of question {n}.",
        )
        for n in range(start, start + count)
    ]
    db.session.add_all(questions)
    db.session.commit()
    return questions


def correct_options() -> dict[int, int]:
    return dict(db.session.execute(select(Question.id, Question.correct_option)).all())


def card_id(client: FlaskClient, headers: dict[str, str], subject_id: int, number: int) -> int:
    cards = client.get(f"/api/mock-tests?subject_id={subject_id}&per_page=100", headers=headers).get_json()["items"]
    return next(card["id"] for card in cards if card["test_number"] == number)


# +3/-1 single, +4/-2 multiple with +1 per right option chosen (no wrong one), +3/0 numerical.
JEE_ADVANCED = {
    "questions_per_paper": 3,
    "duration_minutes": 180,
    "single_correct": "3",
    "single_wrong": "-1",
    "multiple_correct": "4",
    "multiple_wrong": "-2",
    "multiple_partial": "1",
    "numerical_correct": "3",
}
