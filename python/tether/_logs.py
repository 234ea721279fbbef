"""Forwarding the script's ``logging`` records and warnings to the host.

A host that wants them sets ``TETHER_LOGS=1`` in the script's environment;
``import tether`` then installs a handler on the root logger and routes
warnings through logging. The handler connects on the first record, so records
logged before the script's first call reach the host too. Without the variable
nothing is imported here (``logging`` costs start-up time).
"""

import os

LOGS_VAR = "TETHER_LOGS"
_installed = False


def install_if_requested() -> None:
    """Install the handler (once) when the host asked for the script's logs."""
    global _installed
    if _installed or os.environ.get(LOGS_VAR) != "1":
        return
    _installed = True
    import logging

    class HostHandler(logging.Handler):
        """Sends each record to the host as an ``rpc.log`` notification."""

        def emit(self, record: logging.LogRecord) -> None:
            from ._connection import connection
            from ._dispatch import CURRENT_CALL
            from ._framing import LOG

            try:
                message = self.format(record)
                params = {"level": record.levelno, "logger": record.name, "message": message}
                # The host's call this record belongs to (the host puts it in that call's span).
                call = CURRENT_CALL.get()
                if call is not None and call.id is not None:
                    params["call"] = call.id
                connection().notify(LOG, (), params)
            except Exception:
                # Logging must never break the script; a lost host is reported by calls.
                pass

    logging.getLogger().addHandler(HostHandler())
    logging.captureWarnings(True)
