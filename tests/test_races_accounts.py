"""Duplicate registrations and upgrades racing through gunicorn (4 workers) on MariaDB."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from flask import Flask

from shared.models import Customer, Subscription
from tests.support.accounts import PASSWORD, bearer, create_admin
from tests.support.live_server import LiveServer, fire_concurrently
from tests.support.queries import count_rows

pytestmark = pytest.mark.race
PHONE_TAKEN = ["A customer with this phone number already exists."]


def statuses(responses: list[requests.Response]) -> list[int]:
    return sorted(r.status_code for r in responses)


def test_concurrent_registrations_with_one_phone(mariadb: Flask, live_server: LiveServer) -> None:
    def register(index: int) -> requests.Response:
        body = {
            "email": f"racer{index}@example.com",
            "password": PASSWORD,
            "full_name": f"Racer {index}",
            "phone_number": "+919700000001" if index % 2 else "097000 00001",
        }
        return requests.post(live_server.url("/api/auth/register"), json=body, timeout=60)

    responses = fire_concurrently(20, register)
    assert statuses(responses) == [201] + [409] * 19, live_server.log_tail()
    for response in responses:
        if response.status_code == 409:
            assert response.headers["Content-Type"] == "application/problem+json"
            assert response.json()["errors"] == {"phone_number": PHONE_TAKEN}
    assert count_rows(Customer, Customer.phone_number == "+919700000001") == 1


def test_concurrent_upgrades_of_admins_sharing_a_phone(mariadb: Flask, live_server: LiveServer) -> None:
    admins = [create_admin(phone_number="+919700000002") for _ in range(10)]
    headers = [bearer(admin) for admin in admins]

    def upgrade(index: int) -> requests.Response:
        return requests.post(live_server.url("/api/customers/upgrade"), json={}, headers=headers[index], timeout=60)

    responses = fire_concurrently(len(admins), upgrade)
    assert statuses(responses) == [201] + [409] * 9, live_server.log_tail()
    assert all(r.json()["errors"] == {"phone_number": PHONE_TAKEN} for r in responses if r.status_code == 409)
    assert count_rows(Customer) == count_rows(Subscription) == 1


def test_one_admin_upgrading_twice_at_once(mariadb: Flask, live_server: LiveServer) -> None:
    headers = bearer(create_admin(phone_number="+919700000003"))

    def upgrade(_: int) -> requests.Response:
        return requests.post(live_server.url("/api/customers/upgrade"), json={}, headers=headers, timeout=60)

    responses = fire_concurrently(8, upgrade)
    assert statuses(responses) == [201] + [409] * 7, live_server.log_tail()
    for response in responses:
        if response.status_code == 409:
            assert response.json()["type"] == "urn:exam-shop:problem:already-customer"
    assert count_rows(Customer) == count_rows(Subscription) == 1


def test_revoked_token_is_refused_by_every_worker(mariadb: Flask, live_server: LiveServer) -> None:
    headers = bearer(create_admin())

    def me(_: int) -> Any:
        return requests.get(live_server.url("/api/auth/me"), headers=headers, timeout=30)

    assert statuses(fire_concurrently(16, me)) == [200] * 16
    assert requests.post(live_server.url("/api/auth/logout"), headers=headers, timeout=30).status_code == 204
    refused = fire_concurrently(16, me)
    assert statuses(refused) == [401] * 16
    assert all("revoked" in r.json()["detail"] for r in refused)
