"""GB 11643-1999 ID numbers: checksum vectors (known valid and invalid numbers), normalisation, birth dates."""

from __future__ import annotations

from datetime import date

import pytest

from engine.vetting import idnumber
from engine.vetting.errors import IdNumberError
from tests.vetting.factories import TODAY


@pytest.mark.parametrize("n", ["11010519491231002X", "440524188001010014", "35020319900101123X"])
def test_domain_valid_examples(n):
    assert idnumber.validate(n, TODAY) == n


def test_domain_invalid_checksum_example():
    with pytest.raises(IdNumberError, match="check character does not match") as e:
        idnumber.validate("340524198001010013", TODAY)
    assert e.value.field == "id_number" and e.value.code == "bad_id_number"
    assert "340524198001010013" not in str(e.value)


@pytest.mark.parametrize("raw", ["35020319900101123x", " 350203 19900101 123X ", "３５０２０３１９９００１０１１２３ｘ",
                                 "\t35020319900101123X\n"])
def test_lower_case_x_spaces_and_full_width_are_normalised(raw):
    assert idnumber.validate(raw, TODAY) == "35020319900101123X"


@pytest.mark.parametrize("raw, reason", [
    ("3502031990010112", "must be 18 characters"),
    ("350203199001011234567", "must be 18 characters"),
    ("05020319900101123X", "not starting with 0"),
    ("3502031990010112X3", "17 digits"),
    ("35020319900230123X", "not a real date"),   # 30 February
    ("35020319901301123X", "not a real date"),   # month 13
    ("350203170001011235", "birth year before 1800"),
    (12345, "must be a string"),
    (None, "must be a string"),
])
def test_malformed_numbers_say_what_is_wrong(raw, reason):
    with pytest.raises(IdNumberError, match=reason):
        idnumber.validate(raw, TODAY)


def test_future_birth_date_is_rejected_and_today_is_not():
    tomorrow = idnumber.compose("350203", date(2026, 9, 9), 1)
    with pytest.raises(IdNumberError, match="in the future"):
        idnumber.validate(tomorrow, TODAY)
    born_today = idnumber.compose("350203", TODAY, 1)
    assert idnumber.validate(born_today, TODAY) == born_today


def test_a_leap_day_birth_is_real_only_in_leap_years():
    assert idnumber.is_valid(idnumber.compose("350206", date(2000, 2, 29), 7), TODAY)
    bad = "35020620010229007"
    assert not idnumber.is_valid(bad + idnumber.check_char(bad), TODAY)


def test_birth_date_sex_and_compose():
    n = idnumber.compose("350211", date(1985, 7, 4), 357)
    assert idnumber.validate(n, TODAY) == n
    assert idnumber.birth_date(n) == date(1985, 7, 4)
    assert idnumber.sex(n) == "male"                     # 17th digit 7: odd
    assert idnumber.sex("11010519491231002X") == "female"  # 17th digit 2: even
    assert idnumber.compose("350203", date(1990, 1, 1), 123) == "35020319900101123X"


def test_any_single_digit_change_breaks_the_checksum():
    n = "35020319900101123X"
    for i in range(17):
        for d in "0123456789":
            mutated = n[:i] + d + n[i + 1:]
            if mutated != n and idnumber.is_valid(mutated, TODAY):
                pytest.fail(f"changing position {i} to {d} kept the checksum valid")


def test_docstring_examples_run():
    import doctest

    from engine.vetting import privacy

    for module in (idnumber, privacy):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
