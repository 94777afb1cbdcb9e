"""The thin adapter between FastAPI and Authlib's (synchronous) OAuth 2.0 server core."""
