"""The HTTP layer: thin views that validate, call one service method and dump."""

from __future__ import annotations

from flask_smorest import Api

from blueprints import accounts, cards, catalog, health, purchases, questions


def register_blueprints(api: Api) -> None:
    for blueprint in (
        health.blp,
        accounts.auth,
        accounts.customers,
        accounts.users,
        catalog.blp,
        questions.blp,
        purchases.blp,
        purchases.payments,
        cards.blp,
        cards.papers,
    ):
        api.register_blueprint(blueprint)
    if api._app.config["PAYMENT_PROVIDER"] == "sandbox":
        api.register_blueprint(purchases.sandbox)
