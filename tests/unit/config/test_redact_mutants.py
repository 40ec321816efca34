"""The redaction layer, encoding by encoding and edge by edge: each test says exactly what the output
must be, so a form that is computed a character short (or not at all) shows (benchmarks/mutation.py)."""

from __future__ import annotations

import base64
import io
import json
import shlex
from urllib.parse import quote, quote_plus

import pytest

from deploy.config.redact import RedactingStream, Redactor

pytestmark = pytest.mark.unit

# Non-ASCII (JSON with and without ensure_ascii differ), a quote, a double quote, a backslash, a space,
# a bell (repr and JSON escape it differently), a slash (percent-encoding with and without safe="/").
VALUE = "pä'ss\"w o/rd\\\x07zz"


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: json.dumps(v)[1:-1],
        lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
        lambda v: json.dumps(json.dumps(v)[1:-1])[1:-1],
        lambda v: json.dumps(json.dumps(v, ensure_ascii=False)[1:-1])[1:-1],
        lambda v: repr(v)[1:-1],
        lambda v: shlex.quote(v),
        lambda v: quote(v, safe=""),
        lambda v: quote(v),
        lambda v: quote_plus(v),
    ],
    ids=[
        "json", "json-utf8", "json-in-json", "json-utf8-in-json", "repr", "shell", "url", "url-path",
        "url-plus",
    ],
)
def test_each_encoding_is_replaced_whole_and_nothing_around_it(encode: object) -> None:
    assert callable(encode)
    form = encode(VALUE)
    assert form != VALUE
    redact = Redactor({"K": VALUE})
    assert redact(f"[{form}]") == "[<K>]"


def _determined_span(prefix: int, size: int, total: int) -> tuple[int, int]:
    """The base64 characters that depend only on bytes prefix..prefix+size of the whole text (6 bits
    a character): from the first character starting at or after the value's first bit, to the last
    one ending at or before its last bit."""
    first = -(-8 * prefix // 6)
    last = (8 * (prefix + size)) // 6
    return first, total - last


@pytest.mark.parametrize("alphabet", ["standard", "urlsafe"])
# 7 bytes: at offset 1 the part of it base64 determines is 8 characters, the shortest searched for.
@pytest.mark.parametrize("value", ["ÿþýüûúùø÷öõ", "?ÿþý"], ids=["22-bytes", "7-bytes"])
@pytest.mark.parametrize("prefix", range(6))
@pytest.mark.parametrize("suffix", range(4))
def test_a_secret_inside_longer_base64_is_replaced_exactly_where_it_is_determined(
    alphabet: str, value: str, prefix: int, suffix: int
) -> None:
    encode = base64.b64encode if alphabet == "standard" else base64.urlsafe_b64encode
    raw = value.encode()
    # The two alphabets differ for these values, so each is tested on its own.
    assert base64.b64encode(raw) != base64.urlsafe_b64encode(raw)
    text = encode(bytes(range(61, 61 + prefix)) + raw + b"~" * suffix).decode().rstrip("=")
    left, right = _determined_span(prefix, len(raw), len(text))
    if suffix == 0 and prefix % 3 == 0:
        right = 0  # the value's own base64 (without padding) ends the text: replaced whole
    redacted = Redactor({"K": value})(text)
    assert "<K>" in redacted, text
    before, _, after = redacted.partition("<K>")
    assert (len(before), len(after)) == (left, right)
    assert before == text[:left] and after == text[len(text) - right :]


@pytest.mark.parametrize("alphabet", [base64.b64encode, base64.urlsafe_b64encode])
def test_a_secret_in_base64_on_its_own_is_replaced_with_or_without_padding(alphabet: object) -> None:
    assert callable(alphabet)
    value = "ÿþýüû"  # 10 bytes: padded
    whole = alphabet(value.encode()).decode()
    assert whole.endswith("=")
    redact = Redactor({"K": value})
    assert redact(f"x {whole} y") == "x <K> y"
    assert redact(f"x {whole.rstrip('=')} y") == "x <K> y"


def test_every_line_of_a_multi_line_secret_counts_even_after_a_short_one() -> None:
    redact = Redactor({"PEM": "ab\nsecond-line-value\nthird-line-value"})
    assert redact("x second-line-value y third-line-value") == "x <PEM> y <PEM>"


def test_no_secret_or_only_too_short_ones_leave_text_alone() -> None:
    for secrets in ({}, {"K": "ab"}):
        redact = Redactor(secrets)
        assert not redact
        assert redact("some text ab") == "some text ab"
        assert redact("") == ""
        assert redact.unsure_tail("some text a") == 0


def test_the_unsure_tail_is_the_longest_end_that_may_start_a_secret() -> None:
    redact = Redactor({"K": "abcdefgh"})
    assert redact.unsure_tail("xx abc") == 3
    assert redact.unsure_tail("xx abcd") == 4
    assert redact.unsure_tail("xx a") == 1
    assert redact.unsure_tail("xx abcdefg") == 7
    assert redact.unsure_tail("xx b") == 0


class _Target(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_a_stream_writes_every_finished_line_at_once_and_holds_the_rest() -> None:
    target = _Target()
    stream = RedactingStream(target, Redactor({"K": "s3cr3t"}))
    assert stream.writable()
    assert stream.write("one s3cr3t\ntwo\nthr") == len("one s3cr3t\ntwo\nthr")
    assert target.getvalue() == "one <K>\ntwo\n"
    stream.write("ee s3c")
    assert target.getvalue() == "one <K>\ntwo\n"
    stream.close_pending()
    assert target.getvalue() == "one <K>\ntwo\nthree s3c"
    assert target.flushes == 1
    stream.close_pending()
    assert target.getvalue() == "one <K>\ntwo\nthree s3c"
    assert target.flushes == 2


def test_giving_the_stream_back_redacts_what_was_pending() -> None:
    target = _Target()
    stream = RedactingStream(target, Redactor({"K": "s3cr3t"}))
    stream.write("no newline s3cr3t")
    stream.close_pending()
    assert target.getvalue() == "no newline <K>"


@pytest.mark.parametrize("suffix", [b"", b"~~~"])
def test_a_secret_whose_base64_ends_in_x_keeps_its_last_character_covered(suffix: bytes) -> None:
    value = "abcdefghij\x17"  # after one byte, its base64 ends in "X" (0x17's low six bits)
    text = base64.b64encode(b"=" + value.encode() + suffix).decode().rstrip("=")
    if not suffix:
        assert text.endswith("X")
    left, right = _determined_span(1, len(value), len(text))
    before, _, after = Redactor({"K": value})(text).partition("<K>")
    assert (len(before), len(after)) == (left, right)


def test_a_stream_given_back_still_takes_writes() -> None:
    target = _Target()
    stream = RedactingStream(target, Redactor({"K": "s3cr3t"}))
    stream.write("a")
    stream.close_pending()
    stream.write("b s3cr3t\n")
    assert target.getvalue() == "ab <K>\n"
