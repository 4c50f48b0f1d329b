from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.geofence.schedule import Schedule, ScheduleError, parse_schedule

SH = "Asia/Shanghai"
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_absent_schedule_is_always_active():
    schedule = parse_schedule(None, SH)
    assert schedule == Schedule(())
    assert schedule.active(at("1999-01-01T00:00:00+00:00"))


def test_absolute_window_inclusive_at_both_ends():
    s = parse_schedule([{"start": "2026-09-08T00:00:00+08:00", "end": "2026-09-11T23:59:59+08:00"}], SH)
    assert not s.active(at("2026-09-07T23:59:59+08:00"))
    assert s.active(at("2026-09-08T00:00:00+08:00"))
    assert s.active(at("2026-09-11T23:59:59+08:00"))
    assert not s.active(at("2026-09-12T00:00:00+08:00"))
    # Same instant written in UTC.
    assert s.active(at("2026-09-07T16:00:00+00:00"))
    assert not s.active(at("2026-09-07T15:59:59+00:00"))


def test_several_windows_any_active():
    s = parse_schedule(
        [
            {"start": "2026-01-01T00:00:00+08:00", "end": "2026-01-02T00:00:00+08:00"},
            {"days": ["sat"], "from": "10:00", "to": "11:00"},
        ],
        SH,
    )
    assert s.active(at("2026-01-01T12:00:00+08:00"))  # absolute (a Thursday)
    assert s.active(at("2026-01-03T10:30:00+08:00"))  # Saturday
    assert not s.active(at("2026-01-03T11:00:00+08:00"))


def test_recurring_window_half_open():
    s = parse_schedule([{"days": ["mon", "wed"], "from": "08:00", "to": "17:30"}], SH)
    assert s.active(at("2026-09-07T08:00:00+08:00"))  # Monday
    assert s.active(at("2026-09-07T17:29:59+08:00"))
    assert not s.active(at("2026-09-07T17:30:00+08:00"))
    assert not s.active(at("2026-09-07T07:59:59+08:00"))
    assert not s.active(at("2026-09-08T12:00:00+08:00"))  # Tuesday
    assert s.active(at("2026-09-09T12:00:00+08:00"))  # Wednesday


def test_recurring_window_wraps_past_midnight_into_next_day():
    s = parse_schedule([{"days": ["mon"], "from": "22:00", "to": "05:00"}], SH)
    assert not s.active(at("2026-09-07T21:59:00+08:00"))  # Monday before start
    assert s.active(at("2026-09-07T22:00:00+08:00"))
    assert s.active(at("2026-09-07T23:59:59+08:00"))
    assert s.active(at("2026-09-08T00:00:00+08:00"))  # Tuesday, tail of Monday's window
    assert s.active(at("2026-09-08T04:59:59+08:00"))
    assert not s.active(at("2026-09-08T05:00:00+08:00"))
    assert not s.active(at("2026-09-08T22:30:00+08:00"))  # Tuesday evening: not listed
    assert not s.active(at("2026-09-07T03:00:00+08:00"))  # Monday early: Sunday not listed


def test_sunday_window_wraps_into_monday():
    s = parse_schedule([{"days": ["sun"], "from": "23:00", "to": "01:00"}], SH)
    assert s.active(at("2026-09-14T00:30:00+08:00"))  # Monday 00:30
    assert not s.active(at("2026-09-13T00:30:00+08:00"))  # Sunday 00:30


def test_from_equals_to_is_a_full_day_starting_at_from():
    s = parse_schedule([{"days": ["tue"], "from": "00:00", "to": "00:00"}], SH)
    assert s.active(at("2026-09-08T00:00:00+08:00"))
    assert s.active(at("2026-09-08T23:59:59+08:00"))
    assert not s.active(at("2026-09-09T00:00:00+08:00"))
    assert not s.active(at("2026-09-07T23:59:59+08:00"))
    noon = parse_schedule([{"days": ["tue"], "from": "12:00", "to": "12:00"}], SH)
    assert noon.active(at("2026-09-09T11:59:00+08:00"))  # Wednesday before noon
    assert not noon.active(at("2026-09-09T12:00:00+08:00"))


def test_to_may_be_24_00():
    s = parse_schedule([{"days": ["fri"], "from": "22:00", "to": "24:00"}], SH)
    assert s.active(at("2026-09-11T23:59:59+08:00"))
    assert not s.active(at("2026-09-12T00:00:00+08:00"))


def test_day_of_week_uses_the_city_zone_not_the_timestamp_offset():
    s = parse_schedule([{"days": ["tue"], "from": "00:00", "to": "08:00"}], SH)
    # Monday 2026-09-07 20:00 UTC is Tuesday 04:00 in Shanghai.
    utc = at("2026-09-07T20:00:00+00:00")
    assert utc.weekday() == 0
    assert s.active(utc)
    # Tuesday 2026-09-08 02:00 UTC is Tuesday 10:00 in Shanghai: outside.
    assert not s.active(at("2026-09-08T02:00:00+00:00"))
    # The same window in UTC is active at 02:00 UTC on Tuesday.
    assert parse_schedule([{"days": ["tue"], "from": "00:00", "to": "08:00"}], "UTC").active(
        at("2026-09-08T02:00:00+00:00")
    )
    # ZoneInfo objects are accepted too.
    assert parse_schedule([{"days": ["tue"], "from": "00:00", "to": "08:00"}], ZoneInfo(SH)).active(utc)


def test_naive_timestamp_rejected():
    for schedule in (parse_schedule(None, SH), parse_schedule([{"days": ["mon"], "from": "01:00", "to": "02:00"}], SH)):
        with pytest.raises(ValueError, match="naive"):
            schedule.active(datetime(2026, 9, 7, 1, 30))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"days": ["mon"]}, "schedule"),
        ([], "schedule"),
        (["x"], "schedule[0]"),
        ([{"start": "2026-09-08T00:00:00", "end": "2026-09-09T00:00:00+08:00"}], "schedule[0].start"),
        ([{"start": "2026-09-08T00:00:00+08:00", "end": "soon"}], "schedule[0].end"),
        ([{"start": "2026-09-09T00:00:00+08:00", "end": "2026-09-08T00:00:00+08:00"}], "schedule[0].end"),
        ([{"start": 5, "end": "2026-09-08T00:00:00+08:00"}], "schedule[0].start"),
        ([{"days": ["monday"], "from": "01:00", "to": "02:00"}], "schedule[0].days"),
        ([{"days": [], "from": "01:00", "to": "02:00"}], "schedule[0].days"),
        ([{"days": "mon", "from": "01:00", "to": "02:00"}], "schedule[0].days"),
        ([{"days": ["mon"], "from": "1:00", "to": "02:00"}], "schedule[0].from"),
        ([{"days": ["mon"], "from": "24:00", "to": "02:00"}], "schedule[0].from"),
        ([{"days": ["mon"], "from": "01:00", "to": "02:60"}], "schedule[0].to"),
        ([{"days": ["mon"], "from": "01:00"}], "schedule[0]"),
        ([{"days": ["mon"], "from": "01:00", "to": "02:00", "start": "x"}], "schedule[0]"),
        ([{"start": "2026-09-08T00:00:00+08:00", "end": "2026-09-09T00:00:00+08:00"}, {}], "schedule[1]"),
    ],
)
def test_bad_schedules_name_the_field(raw, field):
    with pytest.raises(ScheduleError) as info:
        parse_schedule(raw, SH)
    assert info.value.field == field


def test_unknown_time_zone_rejected():
    with pytest.raises(ValueError, match="time zone"):
        parse_schedule(None, "Mars/Olympus")


def _reference_active(days: set[int], start: int, stop: int, local: datetime) -> bool:
    """Minute-by-minute reference: walk back from ``local`` to the last window start."""
    length = (stop - start) % 1440 or 1440
    for back in range(0, 1441):
        t = local - timedelta(minutes=back)
        if t.weekday() in days and t.hour * 60 + t.minute == start:
            return back < length
    return False


@given(
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 1439),
    stop=st.integers(0, 1439),
    minute=st.integers(0, 14 * 1440),
)
def test_recurring_window_matches_minute_reference(days, start, stop, minute):
    raw = [
        {
            "days": [ALL_DAYS[d] for d in sorted(days)],
            "from": f"{start // 60:02d}:{start % 60:02d}",
            "to": f"{stop // 60:02d}:{stop % 60:02d}",
        }
    ]
    local = datetime(2026, 9, 7, tzinfo=ZoneInfo(SH)) + timedelta(minutes=minute)
    expected = _reference_active(days, start, stop, local)
    assert parse_schedule(raw, SH).active(local.astimezone(UTC)) == expected
