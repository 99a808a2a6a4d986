"""Demo data for `flask seed-demo`: a realistic catalog and two documented accounts.

Idempotent: whatever already exists (by email, slug or subject name) is left as it is,
what is missing is added, including a question bank of QUESTIONS_PER_SUBJECT questions
per demo subject (enough for every paper of MOCK_TEST_QUESTION_COUNT = 10).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, insert, select

from shared.extensions import db
from shared.models import Bundle, Course, Customer, Difficulty, Question, Role, Subject, User
from shared.models.base import utcnow
from shared.passwords import hash_password
from shared.services.catalog import changes_catalog

DEMO_ADMIN = {
    "email": "admin@demo.test",
    "password": "DemoAdmin2026",
    "phone": "+919000000001",
    "name": "Demo Admin",
}
DEMO_STUDENT = {
    "email": "student@demo.test",
    "password": "DemoStudent2026",
    "phone": "+919000000002",
    "name": "Demo Student",
}

# slug, title, description, [(subject, price)], (bundle slug, bundle title, bundle price)
CATALOG: list[tuple[str, str, str, list[tuple[str, str]], tuple[str, str, str]]] = [
    (
        "jee-main",
        "JEE Main",
        "Engineering entrance: physics, chemistry and mathematics.",
        [("Physics", "499.00"), ("Chemistry", "499.00"), ("Mathematics", "599.00")],
        ("jee-main-complete", "JEE Main complete", "1299.00"),
    ),
    (
        "neet-ug",
        "NEET UG",
        "Medical entrance: physics, chemistry and biology.",
        [("Physics", "499.00"), ("Chemistry", "499.00"), ("Biology", "699.00")],
        ("neet-ug-complete", "NEET UG complete", "1399.00"),
    ),
    (
        "upsc-prelims",
        "UPSC Civil Services Prelims",
        "General Studies paper I, subject by subject.",
        [
            ("History", "399.00"),
            ("Geography", "399.00"),
            ("Polity", "449.00"),
            ("Economics", "449.00"),
            ("Environment", "349.00"),
        ],
        ("upsc-gs-complete", "UPSC GS complete", "1699.00"),
    ),
    (
        "load-test",
        "Load test course",
        "Twenty small subjects and a bundle of all of them, for load tests.",
        [(f"Subject {n:02d}", "99.00") for n in range(1, 21)],
        ("load-test-20", "All twenty load-test subjects", "1499.00"),
    ),
]


QUESTIONS_PER_SUBJECT = 15


def demo_question(subject: str, n: int) -> dict[str, object]:
    """A small, answerable practice question (mental arithmetic), different for each n."""
    a, b = 7 * n + 3, 11 * n + 5
    right = a + b
    options = [str(right), str(right + 1), str(right - 10), str(right + 9)]
    order = n % 4  # put the right answer in a different place each time
    options = options[order:] + options[:order]
    return {
        "text": f"{subject} warm-up {n}: what is {a} + {b}?",
        "options": options,
        "correct_option": options.index(str(right)),
        "explanation": f"{a} + {b} = {right}.",
        "difficulty": Difficulty.EASY,
        "is_active": True,
    }


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.created:
            return "Demo data already present; nothing added."
        return "Added: " + ", ".join(self.created)


class DemoDataService:
    @staticmethod
    def is_empty() -> bool:
        return db.session.execute(select(Course.id).limit(1)).first() is None

    @staticmethod
    @changes_catalog
    def seed() -> SeedReport:
        report = SeedReport()
        DemoDataService._account(DEMO_ADMIN, Role.ADMIN, report)
        student = DemoDataService._account(DEMO_STUDENT, Role.STUDENT, report)
        has_profile = db.session.execute(select(Customer.id).where(Customer.user_id == student.id)).first()
        if has_profile is None:
            db.session.add(Customer(user_id=student.id, email=student.email, phone_number=student.phone_number))
            report.created.append("student customer profile")
        for slug, title, description, subjects, bundle in CATALOG:
            DemoDataService._course(slug, title, description, subjects, bundle, report)
        DemoDataService._question_bank(report)
        return report

    @staticmethod
    def _question_bank(report: SeedReport) -> None:
        """QUESTIONS_PER_SUBJECT practice questions for every demo subject that has fewer."""
        slugs = [slug for slug, *_ in CATALOG]
        have = dict(
            db.session.execute(
                select(Subject.id, func.count(Question.id))
                .join(Course, Course.id == Subject.course_id)
                .outerjoin(Question, Question.subject_id == Subject.id)
                .where(Course.slug.in_(slugs))
                .group_by(Subject.id)
            ).all()
        )
        names = dict(db.session.execute(select(Subject.id, Subject.name).where(Subject.id.in_(have))).all())
        now = utcnow()
        rows = [
            {**demo_question(names[subject_id], n), "subject_id": subject_id, "created_at": now, "updated_at": now}
            for subject_id, count in have.items()
            for n in range(count + 1, QUESTIONS_PER_SUBJECT + 1)
        ]
        if rows:
            db.session.execute(insert(Question.__table__), rows)
            report.created.append(f"{len(rows)} questions")

    @staticmethod
    def _account(spec: dict[str, str], role: Role, report: SeedReport) -> User:
        user = db.session.execute(select(User).where(User.email == spec["email"])).scalar_one_or_none()
        if user is None:
            user = User(
                email=spec["email"],
                password_hash=hash_password(spec["password"]),
                full_name=spec["name"],
                phone_number=spec["phone"],
                role=role,
                is_active=True,
            )
            db.session.add(user)
            db.session.flush()
            report.created.append(f"{role.value} {spec['email']}")
        if user.email_verified_at is None:
            # The demo accounts pay in the sandbox at once: their (fictitious) mailboxes count as proven.
            user.email_verified_at = utcnow()
        return user

    @staticmethod
    def _course(
        slug: str,
        title: str,
        description: str,
        subjects: list[tuple[str, str]],
        bundle_spec: tuple[str, str, str],
        report: SeedReport,
    ) -> None:
        course = db.session.execute(select(Course).where(Course.slug == slug)).scalar_one_or_none()
        if course is None:
            course = Course(slug=slug, title=title, description=description, is_active=True)
            db.session.add(course)
            db.session.flush()
            report.created.append(f"course {slug}")
        existing = {
            subject.name: subject
            for subject in db.session.execute(select(Subject).where(Subject.course_id == course.id)).scalars()
        }
        for name, price in subjects:
            if name not in existing:
                existing[name] = Subject(
                    course_id=course.id, name=name, description="", price=Decimal(price), is_active=True
                )
                db.session.add(existing[name])
        db.session.flush()
        bundle_slug, bundle_title, bundle_price = bundle_spec
        if db.session.execute(select(Bundle.id).where(Bundle.slug == bundle_slug)).first() is None:
            bundle = Bundle(
                slug=bundle_slug,
                title=bundle_title,
                description="",
                course_id=course.id,
                price=Decimal(bundle_price),
                is_active=True,
            )
            bundle.subjects = [existing[name] for name, _ in subjects]
            db.session.add(bundle)
            report.created.append(f"bundle {bundle_slug}")
