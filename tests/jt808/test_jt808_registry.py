"""The terminal registry file, admission in registry and open mode, and the stateless auth codes."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from engine.core.errors import ConfigError
from engine.jt808.gateway.registry import (
    DEV_HMAC_KEY,
    TAG_CHARS,
    Admission,
    Terminal,
    load_registry,
    masked,
    parse_registry,
)
from engine.jt808.messages import RegistrationResult

GOOD = "phone,plate,class\n013912345678,闽DH1234,hazmat\n13800000001,闽D00001,taxi\n"


def write(tmp_path, text: str | bytes, name: str = "terminals.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_with_a_bom_crlf_and_blank_lines(tmp_path):
    path = write(tmp_path, ("\ufeffPhone, Plate ,CLASS\r\n013912345678 , 闽DH1234,hazmat\r\n\r\n"
                            "13800000001,闽D00001,taxi\r\n").encode("utf-8"))
    assert load_registry(path) == {
        "13912345678": Terminal("13912345678", "闽DH1234", "hazmat"),  # leading zero dropped, as the header's
        "13800000001": Terminal("13800000001", "闽D00001", "taxi"),
    }


@pytest.mark.parametrize(("text", "where"), [
    ("", "line 1: the header must be phone,plate,class"),
    ("phone,plate\n1,闽D1,taxi\n", "line 1: the header must be phone,plate,class"),
    ("phone,plate,class\n1,闽D1\n", "line 2: expected 3 fields"),
    ("phone,plate,class\n1,闽D1,taxi\n139-1234,闽D2,taxi\n", "line 3, field phone: '139-1234' is not 1-20 digits"),
    ("phone,plate,class\n123456789012345678901,闽D1,taxi\n", "line 2, field phone"),
    ("phone,plate,class\n1,,taxi\n", "line 2, field plate: '' is empty"),
    ("phone,plate,class\n1,闽D/1,taxi\n", "line 2, field plate: '闽D/1' holds a character"),
    ("phone,plate,class\n1,闽D1,tank\n", "line 2, field class: 'tank' is not one of hazmat"),
    ("phone,plate,class\n1,闽D1,taxi\n\n01,闽D2,bus\n", "line 4, field phone: 1 is listed already on line 2"),
    ("phone,plate,class\n1,闽D1,taxi\n2,闽D1,bus\n", "line 3, field plate: 闽D1 is listed already on line 2"),
    ("phone,plate,class\n1,闽D\U0001F600,taxi\n", "line 2, field plate: '闽D\U0001F600' is not GBK text"),
    ('phone,plate,class\n1,"闽D1\n', "line 2: not CSV"),
])
def test_bad_files_name_the_file_line_and_field(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_registry(path)
    assert str(caught.value).startswith(f"terminal registry {path}, {where}"), caught.value


def test_not_utf8_and_missing_files(tmp_path):
    path = write(tmp_path, b"phone,plate,class\n1," + "闽D1".encode("gbk") + b",taxi\n")
    with pytest.raises(ConfigError, match=r"line 2: not UTF-8"):
        load_registry(path)
    with pytest.raises(ConfigError, match=r"jt808.terminals\): cannot read it"):
        load_registry(tmp_path / "missing.csv")


def _admission(**kw) -> Admission:
    args = {"hmac_key": "a-test-key-of-some-length", "open_registration": False, "terminals": parse_registry(GOOD)}
    return Admission(**{**args, **kw})


def test_registry_mode_admits_listed_terminals_with_their_plate():
    a = _admission()
    ok = a.register("13912345678", "闽DH1234")
    assert ok.result is RegistrationResult.OK and ok.terminal == Terminal("13912345678", "闽DH1234", "hazmat")
    assert ok.code and a.authenticate("13912345678", ok.code) == ok.terminal
    assert a.register("13912345678", "闽DH9999").result is RegistrationResult.NO_SUCH_VEHICLE
    refused = a.register("13700000000", "闽DH1234")
    assert refused.result is RegistrationResult.NO_SUCH_TERMINAL and refused.terminal is None and refused.code == ""


def test_open_mode_admits_any_usable_plate_with_the_default_class_and_holds_listed_ones_to_their_entry():
    a = _admission(open_registration=True, default_class="ride_hailing")
    got = a.register("13700000000", " 粤B12345 ")
    assert got.result is RegistrationResult.OK and got.terminal == Terminal("13700000000", "粤B12345", "ride_hailing")
    assert a.authenticate("13700000000", got.code) == got.terminal  # the plate comes back out of the code
    for bad in ("", "粤B/1", "x" * 33):
        assert a.register("13700000000", bad).result is RegistrationResult.NO_SUCH_VEHICLE
    assert a.register("13912345678", "闽DH9999").result is RegistrationResult.NO_SUCH_VEHICLE  # listed: its plate
    assert a.register("13912345678", "闽DH1234").terminal.vclass == "hazmat"
    without_file = Admission(hmac_key="k", open_registration=True)
    assert without_file.register("1", "闽D1").terminal == Terminal("1", "闽D1", "other")


def test_the_code_is_the_plate_in_hex_and_a_truncated_hmac():
    a = _admission()
    code = a.issue("13912345678", "闽DH1234")
    plate_hex, tag = code.split(".")
    assert bytes.fromhex(plate_hex).decode() == "闽DH1234" and len(tag) == TAG_CHARS
    want = hmac.new(b"a-test-key-of-some-length", b"citywatch-jt808-auth\x00" + "13912345678|闽DH1234".encode(),
                    hashlib.sha256).hexdigest()[:TAG_CHARS]
    assert tag == want
    # stateless: another process (another Admission) with the same key verifies it
    assert _admission().authenticate("13912345678", code) is not None


def test_tampered_or_foreign_codes_are_refused():
    a = _admission(open_registration=True)
    code = a.issue("13912345678", "闽DH1234")
    plate_hex, tag = code.split(".")
    other_plate = "闽D00001".encode().hex()
    flipped = tag[:-1] + ("0" if tag[-1] != "0" else "1")
    for bad in (f"{other_plate}.{tag}", f"{plate_hex}.{flipped}", f"{plate_hex}.{tag[:-1]}", plate_hex, tag, "",
                f"{plate_hex.upper()}.{tag}", f"{plate_hex[:2]} {plate_hex[2:]}.{tag}", "zz." + tag,
                "c3." + tag, code + ".x", "x" * 300, f"{plate_hex}.{tag}\x00"):
        assert a.authenticate("13912345678", bad) is None, bad
    assert a.authenticate("13800000001", code) is None  # another phone's code
    assert _admission(hmac_key="another-key").authenticate("13912345678", code) is None
    assert a.authenticate("13912345678", code) is not None


def test_a_terminal_removed_from_the_registry_is_locked_out_at_its_next_authentication():
    code = _admission().issue("13800000001", "闽D00001")
    fewer = _admission(terminals=parse_registry("phone,plate,class\n013912345678,闽DH1234,hazmat\n"))
    assert fewer.authenticate("13800000001", code) is None
    moved = _admission(terminals=parse_registry("phone,plate,class\n13800000001,闽D77777,taxi\n"))
    assert moved.authenticate("13800000001", code) is None  # listed now with another plate


def test_dev_key_settings_checks_and_no_secret_in_repr():
    dev = Admission(hmac_key="", open_registration=True)
    assert dev.is_dev_key and not _admission().is_dev_key
    assert dev.issue("1", "闽D1") == Admission(hmac_key=DEV_HMAC_KEY, open_registration=True).issue("1", "闽D1")
    assert "a-test-key" not in repr(_admission()) and "dev_key=True" in repr(dev)
    with pytest.raises(ConfigError, match="jt808.default_class"):
        Admission(hmac_key="k", open_registration=True, default_class="tank")
    with pytest.raises(ConfigError, match="jt808.terminals"):
        Admission(hmac_key="k", open_registration=False)


def test_masked_phone_for_logs():
    assert masked("13912345678") == "*******5678" and masked("12") == "12"
