"""Forwarding the script's ``logging`` records and warnings to the host."""

import logging
from typing import Any

_installed = False


class HostHandler(logging.Handler):
    """Sends each record to the host as an ``rpc.log`` notification."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self._conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self._conn.notify("rpc.log", (), {"level": record.levelno, "logger": record.name, "message": message})
        except Exception:
            # Logging must never break the script; a lost host is reported by calls.
            pass


def forward_logs(conn: Any) -> None:
    """Install the handler on the root logger (once) and route warnings through logging."""
    global _installed
    if _installed:
        return
    _installed = True
    logging.getLogger().addHandler(HostHandler(conn))
    logging.captureWarnings(True)
