"""Imported before any test module or conftest: whatever the shell exported, the app's
settings start from nothing here (app.py builds an app as soon as it is imported)."""

from tests.support.hermetic import isolate_from_environment

isolate_from_environment()
