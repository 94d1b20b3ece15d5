"""Fleet definitions without a database: the expression language, the loader, the shipped fleets' rows."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_certload.seeding.expressions import FleetExpressionError, compile_expression, compile_template
from pytest_certload.seeding.fleet import FleetDefinitionError, available_fleets, load_fleet

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("source", "i", "expected"),
    [("i", 7, 7), ("(i // 256) % 256", 5000, 19), ("-(i % 60)", 61, -1), ("(i % 30) * 86400 + 3", 31, 86403)],
)
def test_expressions_compute_integer_arithmetic_of_i(source: str, i: int, expected: int) -> None:
    assert compile_expression(source)(i) == expected


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "i.__class__",
        "open('/etc/passwd')",
        "j + 1",
        "i ** 2",
        "[i]",
        "lambda: 1",
        "'a'",
        "1.5 * i",
        "i if i else 0",
    ],
)
def test_expressions_outside_the_whitelist_are_refused(source: str) -> None:
    with pytest.raises(FleetExpressionError, match=r"not allowed|not a valid"):
        compile_expression(source)


def test_templates_format_fields_and_keep_literal_braces() -> None:
    assert compile_template("cert-loadtest-bulk-{i:05d}")(42) == "cert-loadtest-bulk-00042"
    assert compile_template("10.42.{(i // 256) % 256}.{i % 256}")(4999) == "10.42.19.135"
    assert compile_template("{{literal}}-{i}")(3) == "{literal}-3"
    with pytest.raises(FleetExpressionError, match="format spec"):
        compile_template("{i:{i}}")
    with pytest.raises(FleetExpressionError, match="conversions"):
        compile_template("{i!r}")
    with pytest.raises(FleetExpressionError, match="literal brace"):
        compile_template("unbalanced {")


def test_shipped_fleets_are_listed() -> None:
    assert {"bulk_renewal", "agent_fleet", "acme_profile"} <= set(available_fleets())


def test_bulk_renewal_rows_match_the_original_seed_with_titlecase_status() -> None:
    fleet = load_fleet("bulk_renewal")
    assert (fleet.table, fleet.count, fleet.id_prefix) == (
        "managed_certificates",
        10_000,
        "cert-loadtest-bulk-",
    )
    rows = [dict(zip(fleet.column_names, r, strict=True)) for r in fleet.rows(NOW)]
    assert len(rows) == 10_000
    first, last = rows[0], rows[-1]
    assert first["id"] == "cert-loadtest-bulk-00001" and last["id"] == "cert-loadtest-bulk-10000"
    assert first["name"] == first["common_name"] == "loadtest-bulk-00001.example.test"
    assert first["sans"] == ["loadtest-bulk-00001.example.test"]
    assert {r["status"] for r in rows} == {"Active"}
    assert {(r["owner_id"], r["team_id"], r["issuer_id"], r["renewal_policy_id"]) for r in rows} == {
        ("o-alice", "t-platform", "iss-local", "rp-standard")
    }
    assert {r["environment"] for r in rows} == {"loadtest"}
    offsets = [r["expires_at"] - NOW for r in rows]
    assert min(offsets) >= timedelta(0) and max(offsets) < timedelta(days=30)
    assert len({o.days for o in offsets}) == 30  # spread over every day of the window
    # row 31: 31 % 30 = 1 day, 31 % 24 = 7 hours (the original's formula)
    assert rows[30]["expires_at"] - NOW == timedelta(days=1, hours=7)
    tags = json.loads(first["tags"])
    assert tags == {"source": "loadtest-phase8", "batch": "bulk-renewal"}
    assert all(isinstance(v, str) for v in tags.values())
    assert len({r["name"] for r in rows}) == 10_000


def test_agent_fleet_rows_have_the_original_mix_and_no_nulls() -> None:
    fleet = load_fleet("agent_fleet")
    rows = [dict(zip(fleet.column_names, r, strict=True)) for r in fleet.rows(NOW)]
    assert [r["id"] for r in rows[:2]] == ["ag-loadtest-00001", "ag-loadtest-00002"]
    assert rows[-1]["id"] == "ag-loadtest-05000"
    assert Counter(r["os"] for r in rows) == {"linux": 4000, "windows": 500, "darwin": 500}
    assert Counter(r["architecture"] for r in rows) == {"amd64": 4000, "arm64": 1000}
    assert rows[0]["os"] == "darwin" and rows[9]["os"] == "windows" and rows[4]["architecture"] == "arm64"
    assert rows[4999]["ip_address"] == "10.42.19.136"
    assert {r["status"] for r in rows} == {"Online"}
    for col in ("os", "architecture", "ip_address", "version", "api_key_hash", "hostname"):
        assert all(isinstance(r[col], str) and r[col] for r in rows), col
    assert len({r["name"] for r in rows}) == 5000
    assert all(timedelta(seconds=-59) <= r["last_heartbeat_at"] - NOW <= timedelta(0) for r in rows)
    assert {(NOW - r["registered_at"]).days for r in rows} == set(range(1, 91))


def test_agent_ids_follow_the_k6_index_the_scenarios_use() -> None:
    ids = load_fleet("agent_fleet").ids()
    assert len(ids) == 5000
    # agent_storm.js: index = (VU * 1000 + ITER) % fleet; id = ag-loadtest- + 5-digit (index + 1)
    vu, it = 7, 123
    assert ids[(vu * 1000 + it) % len(ids)] == f"ag-loadtest-{(vu * 1000 + it) % 5000 + 1:05d}"
    assert ids[-1] == "ag-loadtest-05000" and ids[1:3] == ["ag-loadtest-00002", "ag-loadtest-00003"]
    with pytest.raises(IndexError):
        ids[5000]


def test_acme_profile_is_the_prof_test_row() -> None:
    fleet = load_fleet("acme_profile")
    rows = list(fleet.rows(NOW))
    assert fleet.table == "certificate_profiles" and len(rows) == 1
    assert dict(zip(fleet.column_names, rows[0], strict=True))["id"] == "prof-test"


def test_with_count_scales_a_fleet_without_touching_the_file() -> None:
    fleet = load_fleet("bulk_renewal").with_count(1_000_000)
    assert fleet.count == 1_000_000 and fleet.ids()[-1] == "cert-loadtest-bulk-1000000"
    assert load_fleet("bulk_renewal").count == 10_000


def write_fleet(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return path


GOOD_HEAD = '[fleet]\ntable = "agents"\ncount = 3\nid_prefix = "ag-x-"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[columns]\nid = "a"\n', "missing \\[fleet\\]"),
        (GOOD_HEAD, "missing or empty \\[columns\\]"),
        (GOOD_HEAD + '[columns]\nname = "n{i}"\n', "must define 'id'"),
        (GOOD_HEAD + '[columns]\nid = "other-{i}"\n', "does not start with fleet.id_prefix"),
        (
            GOOD_HEAD + '[columns]\nid = "ag-x-{i}"\nos = { kind = "random" }\n',
            "columns.os: kind must be one of",
        ),
        (
            GOOD_HEAD + '[columns]\nid = "ag-x-{i}"\nos = { kind = "choice", by = "i" }\n',
            "missing \\['values'\\]",
        ),
        (
            GOOD_HEAD + '[columns]\nid = "ag-x-{i}"\ntags = { kind = "json", value = { n = 1 } }\n',
            "json.value.n must be a string",
        ),
        (GOOD_HEAD + '[columns]\nid = "ag-x-{__import__(1)}"\n', "columns.id: .* is not allowed"),
        (GOOD_HEAD.replace("count = 3", "count = 0") + '[columns]\nid = "ag-x-{i}"\n', "fleet.count must be"),
        (GOOD_HEAD + "oops = 1\n[columns]\nid = 'ag-x-{i}'\n", "unknown keys in \\[fleet\\]"),
        ("[fleet\n", "not valid TOML"),
    ],
)
def test_malformed_fleet_files_are_refused_with_the_key_named(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(FleetDefinitionError, match=message):
        load_fleet(write_fleet(tmp_path, text))


def test_unknown_fleet_name_lists_the_known_ones() -> None:
    with pytest.raises(FleetDefinitionError, match="bulk_renewal"):
        load_fleet("no_such_fleet")


def test_dynamic_json_values_are_templated_per_row(tmp_path: Path) -> None:
    text = GOOD_HEAD + '[columns]\nid = "ag-x-{i}"\ntags = { kind = "json", value = { n = "{i:03d}" } }\n'
    fleet = load_fleet(write_fleet(tmp_path, text))
    assert [json.loads(r[1]) for r in fleet.rows(NOW)] == [{"n": "001"}, {"n": "002"}, {"n": "003"}]


def test_column_names_never_reach_the_generated_code(tmp_path: Path) -> None:
    evil = "x) or __import__('os').system('touch pwned') or (1"
    text = GOOD_HEAD + f'[columns]\nid = "ag-x-{{i}}"\n"{evil}" = {{ kind = "const", value = "v" }}\n'
    fleet = load_fleet(write_fleet(tmp_path, text))
    assert fleet.column_names == ["id", evil]
    assert next(fleet.rows(NOW)) == ("ag-x-1", "v")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
