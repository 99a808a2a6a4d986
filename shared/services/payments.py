"""Payment providers behind one small interface: Razorpay (its SDK), the sandbox, none.

Signatures are Razorpay's for every provider: a payment confirmation is signed with
HMAC-SHA256 of `order_id|payment_id` under the key secret, a webhook with HMAC-SHA256 of
its raw body under the webhook secret (`X-Razorpay-Signature`), both in hex, compared in
constant time. The sandbox plays the same flow locally, like Saleor's dummy gateway: its
ids carry what a provider would look up (the order's amount and currency, the payment's
order and outcome), and the signatures make them unforgeable.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import razorpay
import requests
from flask import current_app

from shared.errors import Conflict, ServiceUnavailable
from shared.models import Provider

log = logging.getLogger(__name__)
T = TypeVar("T")

PAID_STATUSES = ("authorized", "captured")
SANDBOX_ORDER = "order_sbx_"
SANDBOX_PAYMENT = "pay_sbx_"
SANDBOX_OUTCOMES = {"captured": "C", "failed": "F"}


def to_paise(amount: Decimal) -> int:
    """Rupees (two decimals) to integer paise, exactly; never through a float."""
    paise = amount * 100
    if paise != paise.to_integral_value():
        raise ValueError(f"{amount} has more than two decimals")
    return int(paise)


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_matches(secret: str, message: bytes, signature: str) -> bool:
    return hmac.compare_digest(hmac_hex(secret, message), signature.strip().lower())


@dataclass(frozen=True)
class ProviderOrder:
    id: str
    amount: int  # paise
    currency: str


@dataclass(frozen=True)
class ProviderPayment:
    id: str
    order_id: str | None
    amount: int  # paise
    currency: str
    status: str  # Razorpay's: created, authorized, captured, refunded, failed

    @property
    def paid(self) -> bool:
        return self.status in PAID_STATUSES

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> ProviderPayment:
        return cls(
            id=str(entity["id"]),
            order_id=entity.get("order_id"),
            amount=int(entity["amount"]),
            currency=str(entity["currency"]),
            status=str(entity["status"]),
        )


@dataclass(frozen=True)
class ProviderRefund:
    id: str
    payment_id: str
    amount: int  # paise
    status: str  # pending, processed, failed


class ProviderUnavailable(ServiceUnavailable):
    """The provider did not answer, or answered with a server error: try again later."""


class PaymentProvider:
    """What the purchase flow needs from a provider."""

    name: Provider

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.key_id: str = config["PAYMENT_KEY_ID"] or ""
        self.key_secret: str = config["PAYMENT_KEY_SECRET"] or ""
        self.webhook_secret: str = config["PAYMENT_WEBHOOK_SECRET"] or ""

    @property
    def takes_payments(self) -> bool:
        return True

    def payment_signature(self, order_id: str, payment_id: str) -> str:
        return hmac_hex(self.key_secret, f"{order_id}|{payment_id}".encode())

    def verify_payment(self, order_id: str, payment_id: str, signature: str) -> bool:
        return signature_matches(self.key_secret, f"{order_id}|{payment_id}".encode(), signature)

    def webhook_signature(self, body: bytes) -> str:
        return hmac_hex(self.webhook_secret, body)

    def verify_webhook(self, body: bytes, signature: str | None) -> bool:
        return bool(signature) and signature_matches(self.webhook_secret, body, signature or "")

    def create_order(self, amount: int, currency: str, receipt: str) -> ProviderOrder:
        raise NotImplementedError

    def fetch_payment(self, payment_id: str) -> ProviderPayment | None:
        """The payment as the provider knows it; None when it knows no such payment."""
        raise NotImplementedError

    def order_payments(self, order_id: str) -> list[ProviderPayment]:
        raise NotImplementedError

    def refund(self, payment_id: str, amount: int, idempotency_key: str) -> ProviderRefund:
        raise NotImplementedError


class NoProvider(PaymentProvider):
    """PAYMENT_PROVIDER=none: purchases are fulfilled at once, without payment."""

    name = Provider.NONE

    @property
    def takes_payments(self) -> bool:
        return False


class SandboxProvider(PaymentProvider):
    """Razorpay's flow and signatures, played locally (development and tests)."""

    name = Provider.SANDBOX

    def create_order(self, amount: int, currency: str, receipt: str) -> ProviderOrder:
        return ProviderOrder(f"{SANDBOX_ORDER}{amount}_{currency}_{secrets.token_hex(6)}", amount, currency)

    @staticmethod
    def parse_order(order_id: str) -> ProviderOrder | None:
        if not order_id.startswith(SANDBOX_ORDER):
            return None
        amount, _, rest = order_id.removeprefix(SANDBOX_ORDER).partition("_")
        currency, _, token = rest.partition("_")
        if not amount.isdigit() or len(currency) != 3 or not token:
            return None
        return ProviderOrder(order_id, int(amount), currency)

    def new_payment(self, order_id: str, outcome: str) -> ProviderPayment:
        tail = order_id.removeprefix(SANDBOX_ORDER)
        payment_id = f"{SANDBOX_PAYMENT}{SANDBOX_OUTCOMES[outcome]}_{tail}_{secrets.token_hex(4)}"
        payment = self.fetch_payment(payment_id)
        assert payment is not None
        return payment

    def fetch_payment(self, payment_id: str) -> ProviderPayment | None:
        if not payment_id.startswith(SANDBOX_PAYMENT):
            return None
        code, _, rest = payment_id.removeprefix(SANDBOX_PAYMENT).partition("_")
        order_tail, _, _token = rest.rpartition("_")
        order = self.parse_order(SANDBOX_ORDER + order_tail)
        if order is None or code not in SANDBOX_OUTCOMES.values():
            return None
        status = "captured" if code == SANDBOX_OUTCOMES["captured"] else "failed"
        return ProviderPayment(payment_id, order.id, order.amount, order.currency, status)

    def order_payments(self, order_id: str) -> list[ProviderPayment]:
        # The sandbox keeps no ledger: what its checkout paid reaches the app by the
        # webhook it delivers, or by the SPA's confirmation.
        return []

    def refund(self, payment_id: str, amount: int, idempotency_key: str) -> ProviderRefund:
        # Deterministic, like a provider honouring X-Refund-Idempotency.
        refund_id = "rfnd_sbx_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]
        return ProviderRefund(refund_id, payment_id, amount, "pending")


class RazorpayProvider(PaymentProvider):
    """The Razorpay API through the official SDK."""

    name = Provider.RAZORPAY

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        options = {"base_url": config["PAYMENT_API_BASE_URL"]} if config.get("PAYMENT_API_BASE_URL") else {}
        self.client = razorpay.Client(auth=(self.key_id, self.key_secret), **options)
        self.timeout = config["PAYMENT_API_TIMEOUT"]

    def _call(self, what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return call(*args, timeout=self.timeout, **kwargs)
        except razorpay.errors.BadRequestError as exc:
            log.warning("Razorpay refused %s: %s", what, exc)
            raise Conflict(f"The payment provider refused to {what}.", slug="payment-provider-refused") from exc
        except (razorpay.errors.ServerError, razorpay.errors.GatewayError, requests.RequestException) as exc:
            log.warning("Razorpay did not %s: %r", what, exc)
            raise ProviderUnavailable("The payment provider is not answering; please try again shortly.") from exc

    def create_order(self, amount: int, currency: str, receipt: str) -> ProviderOrder:
        order = self._call(
            "create the order",
            self.client.order.create,
            data={"amount": amount, "currency": currency, "receipt": receipt},
        )
        return ProviderOrder(str(order["id"]), int(order["amount"]), str(order["currency"]))

    def fetch_payment(self, payment_id: str) -> ProviderPayment | None:
        try:
            entity = self.client.payment.fetch(payment_id, timeout=self.timeout)
        except razorpay.errors.BadRequestError:
            return None  # Razorpay answers 400 BAD_REQUEST_ERROR for an id it does not know
        except (razorpay.errors.ServerError, razorpay.errors.GatewayError, requests.RequestException) as exc:
            log.warning("Razorpay did not fetch payment %s: %r", payment_id, exc)
            raise ProviderUnavailable("The payment provider is not answering; please try again shortly.") from exc
        return ProviderPayment.from_entity(entity)

    def order_payments(self, order_id: str) -> list[ProviderPayment]:
        answer = self._call("list the order's payments", self.client.order.payments, order_id)
        return [ProviderPayment.from_entity(entity) for entity in answer.get("items", [])]

    def refund(self, payment_id: str, amount: int, idempotency_key: str) -> ProviderRefund:
        entity = self._call(
            "refund the payment",
            self.client.payment.refund,
            payment_id,
            {"amount": amount},
            headers={"X-Refund-Idempotency": idempotency_key},
        )
        return ProviderRefund(
            str(entity["id"]), payment_id, int(entity["amount"]), str(entity.get("status", "pending"))
        )


PROVIDERS: dict[str, type[PaymentProvider]] = {
    "razorpay": RazorpayProvider,
    "sandbox": SandboxProvider,
    "none": NoProvider,
}


def payment_provider() -> PaymentProvider:
    """The configured provider (one per app and configuration: the SDK keeps a session)."""
    config = current_app.config
    key = (config["PAYMENT_PROVIDER"], config["PAYMENT_KEY_ID"], config["PAYMENT_API_BASE_URL"])
    cached = current_app.extensions.get("payment_provider")
    if cached is None or cached[0] != key:
        cached = (key, PROVIDERS[config["PAYMENT_PROVIDER"]](config))
        current_app.extensions["payment_provider"] = cached
    return cached[1]


def provider_named(name: Provider) -> PaymentProvider:
    """The provider that made a purchase's order (the configured one, when it is that)."""
    provider = payment_provider()
    if provider.name is not name:
        raise Conflict(
            f"This purchase was made with the {name.value} provider, which is not the one configured now.",
            slug="payment-provider-changed",
        )
    return provider
