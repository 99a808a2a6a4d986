"""The baseline of scripts/bench_api.py: a bare Flask app, served by gunicorn like ours."""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/bare")
def bare_get() -> object:
    return jsonify(status="ok")


@app.post("/bare")
def bare_post() -> object:
    return jsonify(received=request.get_json(silent=True)), 201
