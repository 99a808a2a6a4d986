"""Clients generated from /api/openapi.json work: TypeScript types (openapi-typescript) that
`tsc --strict` accepts for the SPA's usage (tests/typescript/usage.ts), and a Python client
(openapi-python-client) that logs in, buys, pays in the sandbox and takes a test against gunicorn.

Generated code is cached in the temporary directory, keyed by the document and the tools'
versions, never written into the repository."""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from shared.services.demo import DemoDataService
from tests.conftest import app_config
from tests.support.accounts import PASSWORD, registration
from tests.support.live_server import PROJECT_ROOT, LiveServer
from tests.support.tools import require_tool

TYPESCRIPT = PROJECT_ROOT / "tests" / "typescript"
PYTHON_CLIENT_CONFIG = PROJECT_ROOT / "tests" / "clients" / "python-client.yaml"
PYTHON_PACKAGE = "exam_shop_client"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("document") / "doc.sqlite3"
    flask_app = create_app(app_config(f"sqlite:///{path}"))
    return json.dumps(flask_app.test_client().get("/api/openapi.json").get_json(), indent=1, sort_keys=True)


def generated(kind: str, document: str, key: str, build: Callable[[Path, Path], None]) -> Path:
    """`build(document_path, out_dir)` once per document and tool version."""
    digest = hashlib.sha256(f"{key}\n{document}".encode()).hexdigest()[:20]
    target = Path(tempfile.gettempdir()) / "exam-shop-generated" / f"{kind}-{digest}"
    if not target.exists():
        work = Path(tempfile.mkdtemp(prefix=f"{kind}-"))
        (work / "openapi.json").write_text(document)
        build(work / "openapi.json", work / "out")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            (work / "out").rename(target)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(work, ignore_errors=True)
    return target


def run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def test_typescript_types_from_the_document_type_check_the_spa_usage(document: str) -> None:
    bin_dir = require_tool(TYPESCRIPT / "node_modules" / ".bin", "node_modules of tests/typescript")
    lock = (TYPESCRIPT / "package-lock.json").read_text()

    def build(spec: Path, out: Path) -> None:
        out.mkdir()
        run([str(bin_dir / "openapi-typescript"), str(spec), "-o", str(out / "api.d.ts")], TYPESCRIPT)

    types = generated("typescript", document, lock, build) / "api.d.ts"
    text = types.read_text()
    assert "operations = Record<string, never>" not in text, "no operationIds: clients get no operation types"

    check = Path(tempfile.mkdtemp(prefix="tsc-"))
    try:
        for name in ("usage.ts", "tsconfig.json"):
            shutil.copy(TYPESCRIPT / name, check / name)
        shutil.copy(types, check / "api.d.ts")
        (check / "node_modules").symlink_to(TYPESCRIPT / "node_modules")
        run([str(bin_dir / "tsc"), "--strict", "-p", str(check)], check)
    finally:
        shutil.rmtree(check, ignore_errors=True)


@pytest.fixture
def python_client(document: str) -> Iterator[Any]:
    generator = require_tool(Path(sys.executable).parent / "openapi-python-client", "openapi-python-client")
    version = subprocess.run([str(generator), "--version"], capture_output=True, text=True, check=True).stdout

    def build(spec: Path, out: Path) -> None:
        out.mkdir()
        command = [str(generator), "generate", "--path", str(spec), "--meta", "none"]
        command += ["--config", str(PYTHON_CLIENT_CONFIG), "--output-path", str(out / PYTHON_PACKAGE)]
        run(command, out)

    root = generated("python-client", document, version, build)
    sys.path.insert(0, str(root))
    for name in [name for name in sys.modules if name.split(".")[0] == PYTHON_PACKAGE]:
        del sys.modules[name]
    try:
        yield importlib.import_module(PYTHON_PACKAGE)
    finally:
        sys.path.remove(str(root))


def test_a_generated_python_client_logs_in_buys_pays_and_takes_a_test(
    python_client: Any, sandbox_server: LiveServer, mariadb: Flask
) -> None:
    from exam_shop_client import AuthenticatedClient, Client  # type: ignore[import-not-found]
    from exam_shop_client.api.auth import get_me, login, register
    from exam_shop_client.api.courses import get_course, list_courses
    from exam_shop_client.api.mock_tests import list_cards, review_card, save_answers, start_card, submit_card
    from exam_shop_client.api.payments_sandbox import sandbox_pay
    from exam_shop_client.api.purchases import confirm_payment, create_purchase
    from exam_shop_client.models import (
        Answers,
        AnswersAnswers,
        CardStatus,
        Customer,
        ListCardsStatus,
        Login,
        PaymentConfirmation,
        PurchaseRequest,
        PurchaseRequestPurchaseType,
        PurchaseResultStatus,
        Register,
        SandboxPayment,
        SandboxPaymentOutcome,
        Submit,
        SubmitAnswers,
    )

    DemoDataService.seed()
    anonymous = Client(base_url=sandbox_server.base_url, raise_on_unexpected_status=True)
    account = registration()
    created = register.sync_detailed(client=anonymous, body=Register.from_dict(account))
    assert created.status_code == 201
    session = login.sync(client=anonymous, body=Login(email=account["email"], password=PASSWORD))
    client = AuthenticatedClient(base_url=sandbox_server.base_url, token=session.access_token)

    course = get_course.sync(list_courses.sync(client=anonymous).items[0].id, client=anonymous)
    subject = course.subjects[0]
    order = PurchaseRequest(purchase_type=PurchaseRequestPurchaseType.SINGLE_SUBJECT, subject_id=subject.id)
    bought = create_purchase.sync_detailed(client=client, body=order, idempotency_key="client-buy-1")
    assert bought.status_code == 201
    assert bought.parsed.status is PurchaseResultStatus.PENDING_PAYMENT
    checkout = bought.parsed.payment
    # Razorpay Checkout, played by the sandbox, hands back what the confirmation carries.
    played = SandboxPayment(outcome=SandboxPaymentOutcome.CAPTURED, deliver_webhook=False)
    handed = sandbox_pay.sync(checkout.provider_order_id, client=client, body=played)
    assert handed.signature is not None
    confirmation = PaymentConfirmation(
        provider_order_id=handed.provider_order_id,
        provider_payment_id=handed.provider_payment_id,
        signature=handed.signature,
    )
    paid = confirm_payment.sync(bought.parsed.purchase.id, client=client, body=confirmation)
    assert paid.status is PurchaseResultStatus.PAID
    assert paid.cards_created == mariadb.config["MOCK_TESTS_PER_SUBJECT"]

    cards = list_cards.sync(client=client, subject_id=subject.id, status=ListCardsStatus.AVAILABLE)
    card_id = cards.items[0].id
    paper = start_card.sync(card_id, client=client)
    first = paper.questions[0]
    saved = save_answers.sync(card_id, client=client, body=Answers(AnswersAnswers.from_dict({str(first.id): 0})))
    assert saved.answers.to_dict() == {str(first.id): 0}
    answers = SubmitAnswers.from_dict({str(question.id): 0 for question in paper.questions})
    scored = submit_card.sync(card_id, client=client, body=Submit(answers=answers))
    assert scored.status is CardStatus.COMPLETED
    assert scored.score is not None
    review = review_card.sync(card_id, client=client)
    assert [question.id for question in review.questions] == [question.id for question in paper.questions]

    me = get_me.sync(client=client)
    assert isinstance(me.customer, Customer)
    assert me.user.email == account["email"]
