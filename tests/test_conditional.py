"""Conditional catalog reads: the 304 of a request without a query needs no parsing, and a
request whose query would be refused ignores its If-None-Match (RFC 9110 13.2.1)."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from shared.services.demo import DemoDataService


def test_a_query_is_checked_before_a_304_and_none_is_needed_without_one(client: FlaskClient, app: Flask) -> None:
    DemoDataService.seed()
    for path in ("/api/courses", "/api/bundles"):
        etag = client.get(path).headers["ETag"]
        current = {"If-None-Match": etag}
        assert client.get(path, headers=current).status_code == 304
        assert client.get(f"{path}?page=2&per_page=1", headers=current).status_code == 304
        refused = client.get(f"{path}?per_page=0", headers=current)
        assert refused.status_code == 422
        assert refused.headers["Content-Type"] == "application/problem+json"
        stale = client.get(path, headers={"If-None-Match": '"catalog-0"'})
        assert stale.status_code == 200
        assert stale.headers["ETag"] == etag
