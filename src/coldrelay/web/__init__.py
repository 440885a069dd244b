"""The web app: the public SMTP error reference, the diagnoser and the JSON API."""

from coldrelay.web.app import create_app

__all__ = ["create_app"]
