"""Errors raised by the L2TP codecs (RFC 2661). The machines turn them into counted drops."""


class L2tpError(ValueError):
    """Any malformed L2TP input."""


class HeaderError(L2tpError):
    """The L2TP header (RFC 2661 3.1) is malformed: version, flags, lengths."""


class AvpError(L2tpError):
    """An AVP (RFC 2661 4.1) is malformed: its length, reserved bits or value size."""


class MessageError(L2tpError):
    """A control message is malformed as a whole (e.g. Message Type AVP not first)."""
