"""The stand-in's Go-isms in isolation (the HTTP-level contract tests exercise them end to end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pytest_certload.standin.gocompat import (
    GO_ZERO_TIME,
    DecodeError,
    atoi,
    decode_first_value,
    go_json,
    go_time,
    parse_rfc3339,
    struct_fields,
    valid_ari_cert_id,
    validate_common_name,
)
from pytest_certload.standin.ratelimit import TokenBucket


def test_decoder_reads_only_the_first_value():
    assert decode_first_value(b' \n{"a": 1} {"b": 2} junk') == {"a": 1}
    with pytest.raises(DecodeError):
        decode_first_value(b"   ")
    with pytest.raises(DecodeError):
        decode_first_value(b"[" * 50000)


def test_struct_fields_prefers_exact_keys_and_folds_case():
    assert struct_fields({"NAME": "x", "name": "y"}, ("name",)) == {"name": "y"}
    assert struct_fields({"Common_Name": "x", "other": 1}, ("common_name",)) == {"common_name": "x"}
    assert struct_fields(None, ("name",)) == {}
    with pytest.raises(DecodeError):
        struct_fields([1], ("name",))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (GO_ZERO_TIME, "0001-01-01T00:00:00Z"),
        (datetime(2030, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2030-01-02T03:04:05.12Z"),
        (
            datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2030-01-02T03:04:05-05:30",
        ),
    ],
)
def test_go_time(value, text):
    assert go_time(value) == text
    assert parse_rfc3339(text) == value


@pytest.mark.parametrize("text", ["2030-01-02", "2030-01-02 03:04:05Z", "2030-13-02T03:04:05Z", "tomorrow"])
def test_parse_rfc3339_rejects(text):
    assert parse_rfc3339(text) is None


def test_go_json_escapes_like_encoding_json():
    assert go_json({"a": "<b>&"}) == b'{"a":"\\u003cb\\u003e\\u0026"}\n'


@pytest.mark.parametrize(
    ("text", "value"), [("7", 7), ("+7", 7), ("-3", -3), (" 7", None), ("7_0", None), ("", None)]
)
def test_atoi(text, value):
    assert atoi(text) == value


@pytest.mark.parametrize(
    ("cn", "ok"),
    [("a.example", True), ("*.a.example", True), ("10.0.0.1", True), ("fe80::1", True),
     ("fe80::1%eth0", False), ("a..b", False), ("-a.b", False), ("ä.example", False), ("a@b.example", True),
     ("Name <a@b.example>", True)],
)  # fmt: skip
def test_common_name(cn, ok):
    assert (validate_common_name(cn) is None) is ok


@pytest.mark.parametrize(
    ("cert_id", "ok"),
    [
        ("aaaa.bbbb", True),
        ("YQ.Yg", True),
        ("aaaa", False),
        ("a.b", False),
        ("aa=.bb", False),
        ("aa.bb.cc", False),
    ],
)
def test_ari_cert_id(cert_id, ok):
    assert valid_ari_cert_id(cert_id) is ok


def test_token_bucket_burst_and_refill():
    bucket = TokenBucket(rate=50, burst=100, tokens=100, last_refill=0.0)
    assert all(bucket.allow(0.0) for _ in range(100))
    assert not bucket.allow(0.0)
    assert bucket.allow(0.02)  # one token per 20 ms
    assert not bucket.allow(0.02)
    assert sum(bucket.allow(10.0) for _ in range(200)) == 100  # refill caps at the burst
