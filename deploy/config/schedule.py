"""A job's schedule: the simple words, or a systemd calendar expression read by a conservative parser.

The parser accepts a subset of `systemd.time(7)`'s calendar events that systemd surely accepts
(tests/unit/config/test_schedule.py proves it with the real `systemd-analyze calendar`), and says
what it expected otherwise, so a mistyped schedule fails on this machine, not on a host's timer.
"""

from __future__ import annotations

import re

#: The simple words and what systemd makes of them (its own shorthands, `systemd.time(7)`).
WORDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
}

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBER = re.compile(r"[0-9]{1,4}")
#: The most days each month has (a leap year's February).
_DAYS_IN = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

EXPECTED = (
    "expected minutely, hourly, daily, weekly, monthly, or a calendar expression such as "
    "'*-*-* 03:30:00', 'Mon..Fri 09:00', '*:0/15' or 'Sun *-*-01 04:00' "
    "([weekdays] [year-month-day] [hour:minute[:second]] [UTC]; each number may be *, a list a,b, "
    "a range a..b or a repetition start/step)"
)


class ScheduleError(ValueError):
    """The schedule is not one this parser accepts; the message says what was expected."""


def _weekday(text: str) -> bool:
    def day(word: str) -> bool:
        return word.lower() in _DAYS or word.lower() in _FULL_DAYS

    for item in text.split(","):
        ends = item.split("..") if ".." in item else item.split("-")
        if not 1 <= len(ends) <= 2 or not all(day(end) for end in ends):
            return False
    return True


def _component(text: str, low: int, high: int, what: str) -> None:
    """A number field: '*', or items a, a..b, a/step separated by commas, each within low..high."""
    if text == "*":
        return
    for item in text.split(","):
        if ".." in item:
            parts = item.split("..")
        elif "/" in item:
            start, step = item.split("/", 1)
            if not (_NUMBER.fullmatch(step) and int(step) > 0):
                raise ScheduleError(f"{what}: {item!r} needs a step above 0 after '/'")
            parts = [start]
        else:
            parts = [item]
        for part in parts:
            if not _NUMBER.fullmatch(part):
                raise ScheduleError(f"{what}: {part!r} is not a number (a leading '*/' is not systemd's)")
            if not low <= int(part) <= high:
                raise ScheduleError(f"{what}: {part} is outside {low}..{high}")
        if len(parts) == 2 and int(parts[0]) > int(parts[1]):
            raise ScheduleError(f"{what}: the range {item!r} runs backwards")


def _date(text: str) -> None:
    fields = text.split("-")
    if len(fields) == 2:
        fields = ["*", *fields]
    if len(fields) != 3:
        raise ScheduleError(f"the date {text!r} is not year-month-day or month-day")
    year, month, day = fields
    if year != "*" and not re.fullmatch(r"(19[7-9][0-9]|2[0-9]{3})", year):
        raise ScheduleError(f"the year {year!r} is not '*' or a year such as 2027")
    _component(month, 1, 12, "the month")
    _component(day, 1, 31, "the day")
    if month.isdigit() and day.isdigit() and int(day) > _DAYS_IN[int(month) - 1]:
        raise ScheduleError(f"month {int(month)} has no day {int(day)}: the job would never run")


def _time(text: str) -> None:
    fields = text.split(":")
    if len(fields) not in (2, 3):
        raise ScheduleError(f"the time {text!r} is not hour:minute or hour:minute:second")
    _component(fields[0], 0, 23, "the hour")
    _component(fields[1], 0, 59, "the minute")
    if len(fields) == 3:
        _component(fields[2], 0, 59, "the second")


def check(schedule: str) -> str:
    """The schedule as given if it is valid; ScheduleError (saying what was expected) otherwise."""
    if schedule in WORDS:
        return schedule
    words = schedule.split()
    if not words or len(words) > 4 or schedule != " ".join(words):
        raise ScheduleError(f"{EXPECTED}; got {schedule!r}")
    if words[-1] == "UTC":
        words = words[:-1]
    if words and _weekday(words[0]) and ":" not in words[0]:
        words = words[1:]
    if not words and schedule.split()[0] == "UTC":
        raise ScheduleError(f"{EXPECTED}; got {schedule!r}")
    try:
        seen_time = False
        for index, word in enumerate(words):
            if ":" in word:
                if seen_time or index != len(words) - 1:
                    raise ScheduleError(f"{word!r}: the time comes last, once")
                _time(word)
                seen_time = True
            elif "-" in word and index == 0:
                _date(word)
            else:
                raise ScheduleError(f"{word!r} is not a weekday, a date or a time")
    except ScheduleError as exc:
        raise ScheduleError(f"{exc}; {EXPECTED}; got {schedule!r}") from None
    return schedule


def on_calendar(schedule: str) -> str:
    """The OnCalendar= value of a valid schedule (the words as systemd's normalized form)."""
    return WORDS.get(schedule, schedule)
