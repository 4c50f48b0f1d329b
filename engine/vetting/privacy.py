"""Keep ID numbers out of every output (PIPL): masking, keyed person hashes, log scrubbing.

* :func:`mask` shows the first 4 and last 4 characters: ``3502**********1234``.
* :class:`PersonKeyer` turns a normalised ID number into the person key that
  records, applications and tables are joined on: HMAC-SHA256 with a secret
  from settings, hex. Without the secret the key cannot be reversed by trying
  the (small) space of ID numbers, which a plain hash could.
* :func:`scrub` masks anything shaped like an ID number inside free text; the
  :class:`ScrubFilter` applies it to every record of the vetting loggers, so a
  mistake in a log call cannot leak a number.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

DEV_HMAC_KEY = "citywatch-dev-only-vetting-key"  # used when vetting.hmac_key is empty; never for production
_ID_LIKE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")


def mask(id_number: str) -> str:
    """First 4 and last 4 characters, the rest ``*``; shorter strings are masked whole.

    >>> mask("35020319900101123X")
    '3502**********123X'
    """
    if len(id_number) < 12:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


def scrub(text: str) -> str:
    """``text`` with every 15- or 18-character ID-number-like run masked."""
    return _ID_LIKE.sub(lambda m: mask(m.group(1)), text)


class PersonKeyer:
    """HMAC-SHA256 person keys; the secret is kept out of ``repr`` and logs."""

    def __init__(self, secret: str):
        self.is_dev_key = not secret
        self._secret = (secret or DEV_HMAC_KEY).encode()

    def key(self, normalised_id: str) -> str:
        """64 hex characters; equal ID numbers give equal keys under the same secret."""
        return hmac.new(self._secret, normalised_id.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"PersonKeyer(dev_key={self.is_dev_key})"


class ScrubFilter(logging.Filter):
    """Masks ID-number-like text in a record's message, arguments and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call is still logged, masked
            message = str(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.msg, record.args = scrub(message), None
        return True


def get_logger(name: str) -> logging.Logger:
    """A logger whose records are scrubbed of ID numbers."""
    log = logging.getLogger(name)
    if not any(isinstance(f, ScrubFilter) for f in log.filters):
        log.addFilter(ScrubFilter())
    return log
