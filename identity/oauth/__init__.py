"""OAuth 2.0 and OpenID Connect: clients, grants and tokens (domain side).

Authlib's server core does the protocol; the thin adapter that feeds it HTTP requests
lives in ``api/oauth``. This package holds what Authlib asks of us: client and token
storage, with secrets kept as hashes.
"""
