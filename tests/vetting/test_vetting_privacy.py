"""Masking, the HMAC person key and log scrubbing."""

from __future__ import annotations

import hashlib
import hmac
import logging

from engine.vetting.privacy import DEV_HMAC_KEY, PersonKeyer, ScrubFilter, get_logger, mask, scrub
from tests.vetting.factories import CLEAN_ID, SEED_ID


def test_mask_keeps_first_four_and_last_four():
    assert mask("350203199001011234") == "3502**********1234"
    assert mask(SEED_ID) == "3502**********123X"
    assert mask("short") == "*****"


def test_person_key_is_hmac_sha256_of_the_normalised_number():
    keyer = PersonKeyer("s3cret")
    expected = hmac.new(b"s3cret", SEED_ID.encode(), hashlib.sha256).hexdigest()
    assert keyer.key(SEED_ID) == expected and len(expected) == 64
    assert keyer.key(SEED_ID) == PersonKeyer("s3cret").key(SEED_ID)          # stable across processes
    assert keyer.key(SEED_ID) != PersonKeyer("other").key(SEED_ID)           # depends on the secret
    assert keyer.key(SEED_ID) != hashlib.sha256(SEED_ID.encode()).hexdigest()  # not a plain hash
    assert keyer.key(SEED_ID) != keyer.key(CLEAN_ID)


def test_empty_secret_uses_the_dev_key_and_never_shows_it():
    keyer = PersonKeyer("")
    assert keyer.is_dev_key and not PersonKeyer("x").is_dev_key
    assert keyer.key(SEED_ID) == hmac.new(DEV_HMAC_KEY.encode(), SEED_ID.encode(), hashlib.sha256).hexdigest()
    assert "s3cret" not in repr(PersonKeyer("s3cret")) and DEV_HMAC_KEY not in repr(keyer)


def test_scrub_masks_id_like_runs_only():
    text = f"id {SEED_ID} and {CLEAN_ID.lower()}, old 350203900101123, phone 13800138000, order 1234567890123456789"
    out = scrub(text)
    assert SEED_ID not in out and CLEAN_ID.lower() not in out and "350203900101123" not in out
    assert "3502**********123X" in out and "13800138000" in out and "1234567890123456789" in out


def test_scrub_filter_masks_messages_arguments_and_tracebacks(caplog):
    log = get_logger("tests.vetting.scrub")
    assert sum(isinstance(f, ScrubFilter) for f in get_logger("tests.vetting.scrub").filters) == 1
    with caplog.at_level(logging.INFO, logger="tests.vetting.scrub"):
        log.info("looking up %s", SEED_ID)
        try:
            raise ValueError(f"bad number {CLEAN_ID}")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert SEED_ID not in text and CLEAN_ID not in text
    assert "3502**********123X" in text and "1101**********002X" in text
