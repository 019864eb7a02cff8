"""Errors the crypto HAL raises. None of them ever carries key or secret bytes."""


class CryptoError(ValueError):
    """Base class: a crypto operation refused its input."""


class BackendUnavailable(CryptoError):
    """The backend cannot run here (missing library, kernel without AF_ALG, ...)."""


class UnsupportedAlgorithm(CryptoError):
    """The backend does not implement this algorithm or group."""


class DhError(CryptoError):
    """A peer's Diffie-Hellman public value is malformed or unsafe (RFC 2785, RFC 5903 / SP 800-56A checks)."""


class SignatureError(CryptoError):
    """A signature or certificate did not verify."""
