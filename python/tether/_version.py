"""Versions of this client and of the protocol it speaks."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 5
