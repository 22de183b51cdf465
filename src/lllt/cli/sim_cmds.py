"""Placeholder: filled in by its own module owner."""

from lllt.cli._app import app  # noqa: F401
