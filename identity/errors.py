"""Errors of ``identity/``."""

from __future__ import annotations

from keys.errors import ServiceError


class IdentityError(ServiceError):
    """Base of the errors raised by ``identity/``."""

    slug = "identity-error"
    title = "Identity error"


class InvalidPersonalCode(IdentityError):
    status = 422
    public = True
    slug = "invalid-personal-code"
    title = "Invalid personal code"


class InvalidName(IdentityError):
    status = 422
    public = True
    slug = "invalid-name"
    title = "Invalid name"


class CitizenNotFound(IdentityError):
    status = 404
    public = True
    slug = "citizen-not-found"
    title = "Citizen not found"


class CitizenExists(IdentityError):
    status = 409
    public = True
    slug = "citizen-exists"
    title = "Citizen already registered"


class CitizenStateRejected(IdentityError):
    status = 409
    public = True
    slug = "citizen-state-rejected"
    title = "State change not allowed"


class CitizenNotActive(IdentityError):
    """The citizen is suspended, revoked, or has no certificates yet."""

    status = 403
    public = True
    slug = "citizen-not-active"
    title = "Citizen not active"


class ActivationRejected(IdentityError):
    """Unknown, expired or already used activation code, or a failed enrolment step."""

    status = 400
    public = True
    slug = "activation-rejected"
    title = "Activation rejected"


class AppAuthenticationFailed(IdentityError):
    """The citizen app's request token is missing, malformed, expired, replayed or forged."""

    status = 401
    public = True
    slug = "app-authentication-failed"
    title = "App authentication failed"


class ApprovalNotFound(IdentityError):
    status = 404
    public = True
    slug = "approval-not-found"
    title = "Approval request not found"


class ApprovalRejected(IdentityError):
    """An answer to an approval request that cannot be accepted (expired, used, bad signature)."""

    status = 409
    public = True
    slug = "approval-rejected"
    title = "Approval answer rejected"


class WebEidRejected(IdentityError):
    """A Web eID authentication token failed a check."""

    status = 401
    public = True
    slug = "web-eid-rejected"
    title = "Web eID token rejected"


class RateLimited(IdentityError):
    status = 429
    public = True
    slug = "rate-limited"
    title = "Too many attempts"
