"""The HTTP layer: thin views that validate, call one service method and dump."""

from __future__ import annotations

from flask_smorest import Api

from blueprints import auth, courses, customers, health, mock_tests, purchases, questions


def register_blueprints(api: Api) -> None:
    for module in (health, auth, customers, courses, questions, purchases, mock_tests):
        api.register_blueprint(module.blp)
