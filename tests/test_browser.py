"""In a real browser (headless Debian chromium, Playwright) against gunicorn: the interactive
docs work offline, and a SPA served from another origin uses the API through CORS."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from playwright.sync_api import Route

from shared.models import MailKind
from shared.services.demo import DemoDataService
from tests.conftest import SPA_ORIGIN
from tests.support.browser import chromium
from tests.support.live_server import LiveServer
from tests.support.mail import latest_token


def test_the_interactive_docs_render_every_operation_without_the_internet(live_server: LiveServer) -> None:
    elsewhere: list[str] = []

    def only_the_api(route: Route) -> None:
        if route.request.url.startswith(live_server.base_url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    with chromium() as browser:
        browser.route("**/*", only_the_api)
        page = browser.new_page()
        page.goto(live_server.url("/api/docs"))
        page.locator("#operations-auth-login").wait_for()
        spec = page.evaluate("fetch('/api/openapi.json').then(r => r.json())")
        operations = sum(1 for item in spec["paths"].values() for method in item if method != "parameters")
        assert page.locator(".opblock").count() == operations
        assert page.locator("#operations-purchases-createPurchase").is_visible()
    assert elsewhere == [], f"the docs fetched {elsewhere}"


SPA_FILES = Path(__file__).parent / "browser" / "spa"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """`python -m http.server` for `directory`, on a free port, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_spa_from_another_origin_buys_and_pays_through_cors(sandbox_server: LiveServer, mariadb: Flask) -> None:
    """The page (tests/browser/spa/app.js) registers, logs in, buys, pays in the sandbox as
    Razorpay Checkout would, retries the purchase with its Idempotency-Key and logs out."""
    DemoDataService.seed()

    def verification_token(email: str) -> str:
        """What the owner finds in the mail (called by the page, on Playwright's side of the
        bridge, outside the test's app context)."""
        with mariadb.app_context():
            return latest_token(email, MailKind.VERIFY_EMAIL)

    with static_site(SPA_FILES) as site:
        # The page's origin is the Vite dev server's, http://localhost:5173 (in the API's
        # CORS_ORIGINS); chromium's resolver sends it to `site`, whatever free port that has.
        served_at = urlsplit(site).netloc
        with chromium(f"--host-resolver-rules=MAP {urlsplit(SPA_ORIGIN).netloc} {served_at}") as browser:
            page = browser.new_page()
            page.expose_function("verificationToken", verification_token)
            page.goto(f"{SPA_ORIGIN}/index.html?api={sandbox_server.base_url}")
            page.wait_for_function("window.finished !== undefined", timeout=30_000)
            finished, journal = page.evaluate("[window.finished, window.journal]")
    assert finished == "ok", journal

    assert journal["register"]["status"] == 201
    assert journal["register"]["headers"]["Location"] == "/api/auth/me"
    assert journal["register"]["headers"]["X-Request-ID"]
    assert journal["verify"]["status"] == 200
    assert journal["verify"]["body"]["email"] == journal["register"]["body"]["user"]["email"]
    login = journal["login"]
    assert login["status"] == 200
    assert login["headers"]["X-RateLimit-Limit"]
    assert login["headers"]["X-RateLimit-Remaining"]
    assert login["headers"]["Retry-After"] is None
    assert journal["courses"]["headers"]["ETag"]

    assert journal["text_plain"]["status"] == 415
    assert "Content-Type: application/json" in journal["text_plain"]["body"]["detail"]

    buy, retry = journal["buy"], journal["retry"]
    assert buy["status"] == 201
    assert buy["body"]["status"] == "pending_payment"
    assert buy["headers"]["Location"] == f"/api/purchases/{buy['body']['purchase']['id']}"
    assert buy["headers"]["Idempotent-Replayed"] is None

    handed = journal["checkout"]["body"]
    assert handed["provider_order_id"] == buy["body"]["payment"]["provider_order_id"]
    assert handed["signature"]
    paid = journal["pay"]
    assert paid["status"] == 200
    assert paid["body"]["status"] == "paid"
    assert paid["body"]["cards_created"] == mariadb.config["MOCK_TESTS_PER_SUBJECT"]

    # The retry replays the first answer (the checkout); its purchase is read as it is now.
    assert retry["status"] == 201
    assert retry["headers"]["Idempotent-Replayed"] == "true"
    assert retry["headers"]["Location"] == buy["headers"]["Location"]
    assert {key: retry["body"][key] for key in ("status", "payment", "cards_created")} == {
        key: buy["body"][key] for key in ("status", "payment", "cards_created")
    }
    assert retry["body"]["purchase"]["id"] == buy["body"]["purchase"]["id"]
    assert (buy["body"]["purchase"]["status"], retry["body"]["purchase"]["status"]) == ("pending_payment", "paid")
    assert journal["cards"]["body"]["total"] == mariadb.config["MOCK_TESTS_PER_SUBJECT"]

    # Only answers that ask a client to wait say how long; none of these does.
    assert {name: entry["headers"]["Retry-After"] for name, entry in journal.items()} == dict.fromkeys(journal)
    assert journal["logout"]["status"] == 204
    assert journal["after_logout"]["status"] == 401
