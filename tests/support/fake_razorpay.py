"""A local fake of the parts of Razorpay's HTTP API the shop uses, for the razorpay provider's
tests: the official SDK talks to it over HTTP on a free localhost port, never the internet.

Shapes follow Razorpay's API reference: orders (`POST /v1/orders`, `GET /v1/orders/{id}/payments`),
payments (`GET /v1/payments/{id}`), refunds (`POST /v1/payments/{id}/refund`, idempotent with
`X-Refund-Idempotency`); errors are `{"error": {"code": "BAD_REQUEST_ERROR", ...}}`.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.support.live_server import free_port


def _json(body: Any, status: int = 200) -> Response:
    import json

    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(description: str, status: int = 400, code: str = "BAD_REQUEST_ERROR") -> Response:
    return _json({"error": {"code": code, "description": description}}, status)


@dataclass
class FakeRazorpay:
    key_id: str
    key_secret: str
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    failing: bool = False  # answer 500 to everything (the provider is down)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, self.wsgi, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()

    # What Razorpay Checkout does when the customer pays.
    def pay(self, order_id: str, *, status: str = "captured", amount: int | None = None) -> dict[str, Any]:
        order = self.orders[order_id]
        payment = {
            "id": f"pay_{secrets.token_hex(7)}",
            "entity": "payment",
            "amount": order["amount"] if amount is None else amount,
            "currency": order["currency"],
            "status": status,
            "order_id": order_id,
        }
        self.payments[payment["id"]] = payment
        if status == "captured":
            order["status"] = "paid"
        return payment

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(f"{request.method} {request.path}")
        return self.answer(request)(environ, start_response)

    def answer(self, request: Request) -> Response:
        if self.failing:
            return _error("Something went wrong", 500, "SERVER_ERROR")
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (self.key_id, self.key_secret):
            return _error("Authentication failed", 401)
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and parts == ["v1", "orders"]:
            body = request.get_json()
            order = {
                "id": f"order_{secrets.token_hex(7)}",
                "entity": "order",
                "amount": int(body["amount"]),
                "amount_paid": 0,
                "currency": body["currency"],
                "receipt": body.get("receipt"),
                "status": "created",
            }
            self.orders[order["id"]] = order
            return _json(order)
        if request.method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "orders"] and parts[3] == "payments":
            items = [p for p in self.payments.values() if p["order_id"] == parts[2]]
            return _json({"entity": "collection", "count": len(items), "items": items})
        if request.method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "payments"]:
            payment = self.payments.get(parts[2])
            return _json(payment) if payment else _error("The id provided does not exist")
        if request.method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "payments"] and parts[3] == "refund":
            payment = self.payments.get(parts[2])
            if payment is None:
                return _error("The id provided does not exist")
            key = request.headers.get("X-Refund-Idempotency")
            if key and key in self.refunds:
                return _json(self.refunds[key])
            refund = {
                "id": f"rfnd_{secrets.token_hex(7)}",
                "entity": "refund",
                "amount": int(request.get_json().get("amount", payment["amount"])),
                "payment_id": payment["id"],
                "status": "pending",
            }
            self.refunds[key or refund["id"]] = refund
            return _json(refund)
        return _error("The requested URL was not found on the server.", 404)
