"""--certload-pg-profile: ``durable`` by default (PostgreSQL's own fsync, synchronous_commit and
full_page_writes, data on disk), ``fast`` on request (the three off, data on tmpfs). What PostgreSQL
reports after start is what the stack description, the header, the table and the summary say."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_certload.stack.docker import engine_answers
from pytest_certload.stack.model import Stack
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.postgres import (
    DURABILITY_SETTINGS,
    MEMORY_FILESYSTEMS,
    PG_PROFILES,
    NativePostgres,
    data_parent,
    filesystem_type,
    find_pg_bin,
    server_settings,
)
from pytest_certload.stack.session import StackSession

BASE_IMAGE = os.environ.get("CERTLOAD_DOCKER_BASE_IMAGE") or "certload/base:bookworm"
needs_pg = pytest.mark.skipif(find_pg_bin() is None, reason="no PostgreSQL >= 15 binaries")


def expected_settings(profile: str) -> dict[str, str]:
    return dict.fromkeys(DURABILITY_SETTINGS, "on" if profile == "durable" else "off")


def test_profiles_differ_only_in_durability() -> None:
    durable, fast = server_settings("durable"), server_settings("fast")
    assert not set(DURABILITY_SETTINGS) & set(durable)  # PostgreSQL's own defaults
    assert {k: fast[k] for k in DURABILITY_SETTINGS} == expected_settings("fast")
    assert {k: v for k, v in fast.items() if k not in DURABILITY_SETTINGS} == durable
    with pytest.raises(ValueError, match="expected one of durable, fast"):
        server_settings("quick")
    assert StackOptions().pg_profile == "durable"


def test_durable_data_goes_to_disk_fast_to_tmpfs() -> None:
    durable = data_parent("durable")
    if filesystem_type(durable) in MEMORY_FILESYSTEMS:
        pytest.skip(f"no disk-backed temp directory here ({durable} is {filesystem_type(durable)})")
    assert os.access(durable, os.W_OK)
    if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        assert filesystem_type(data_parent("fast")) in MEMORY_FILESYSTEMS


@needs_pg
@pytest.mark.parametrize("profile", PG_PROFILES)
def test_native_postgres_runs_the_profile_it_reports(tmp_path: Path, profile: str) -> None:
    pg = NativePostgres(tmp_path / "pg", profile=profile)
    try:
        pg.start()
        assert pg.settings == expected_settings(profile)  # as the running server reports them
        datadir = pg._datadir
        assert pg.data_fs == filesystem_type(datadir)
        on_tmpfs = pg.data_fs in MEMORY_FILESYSTEMS
        assert pg.describe_data() == (pg.data_fs if on_tmpfs else f"disk ({pg.data_fs})")
        if profile == "durable" and filesystem_type(data_parent("durable")) not in MEMORY_FILESYSTEMS:
            assert not on_tmpfs
    finally:
        pg.stop()
    assert not datadir.exists()


def started(opts: StackOptions) -> Iterator[Stack]:
    session = StackSession(opts)
    try:
        yield session.start()
    finally:
        session.stop()


@needs_pg
@pytest.mark.parametrize("profile", PG_PROFILES)
def test_native_stack_describes_its_profile(profile: str) -> None:
    for stack in started(StackOptions(provider="native", certctl="standin", pg_profile=profile)):  # type: ignore[arg-type]
        assert stack.pg_profile == profile and stack.pg_settings == expected_settings(profile)
        described = stack.describe()
        assert described["postgres_profile"] == profile
        assert described["postgres_settings"] == expected_settings(profile)
        assert (
            f"{profile} profile" in described["postgres"]
            and described["postgres_data"] in described["postgres"]
        )
        assert stack.components["postgresql"]["profile"] == profile


@pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers")
@pytest.mark.parametrize("profile", PG_PROFILES)
def test_docker_stack_runs_the_profile_it_reports(profile: str) -> None:
    import docker

    client = docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {BASE_IMAGE} missing (bash docker-up.sh image)")
    finally:
        client.close()
    opts = StackOptions(
        provider="docker",
        docker_network="host",
        base_image=BASE_IMAGE,
        certctl="standin",
        pg_profile=profile,  # type: ignore[arg-type]
    )
    for stack in started(opts):
        assert stack.pg_settings == expected_settings(profile)
        if profile == "fast":
            assert stack.pg_data == "tmpfs"
        else:
            assert stack.pg_data.startswith("disk (container file system")


# -- what the user sees ------------------------------------------------------------------------------------

PHASE_TEST = """
import pytest

from pytest_certload.scenarios import api


CAR = dict(executor="constant-arrival-rate", rate=5, time_unit="1s", duration="1s", pre_allocated_vus=2)


@pytest.mark.certload(**CAR)
def test_list(certload, certload_stack):
    certload.run(api.list_certificates(certload_stack), name="list_certificates")
"""


@needs_pg
@pytest.mark.parametrize("profile", [None, "fast"], ids=["default", "fast"])
def test_profile_in_header_table_and_summary(pytester: pytest.Pytester, profile: str | None) -> None:
    pytester.makepyfile(test_phase=PHASE_TEST)
    args = [
        "-p",
        "no:cacheprovider",
        "--certload-stack=native",
        "--certctl=standin",
        "--certload-summary=s.json",
    ]
    if profile:
        args.append(f"--certload-pg-profile={profile}")
    result = pytester.runpytest_subprocess(*args, timeout=180)
    result.assert_outcomes(passed=1)
    name = profile or "durable"
    settings = ", ".join(f"{k}={v}" for k, v in sorted(expected_settings(name).items()))
    where = "tmpfs" if name == "fast" else "disk (*)"
    result.stdout.fnmatch_lines(
        [
            f"certload: PostgreSQL profile: {name} (*",
            "target: certctl stand-in",
            f"  postgres: PostgreSQL *, {name} profile ({settings}; data on {where})",
        ]
    )
    doc = json.loads((pytester.path / "s.json").read_text())
    assert doc["stack"]["postgres_profile"] == name
    assert doc["stack"]["postgres_settings"] == expected_settings(name)
    assert (
        "postgres: PostgreSQL" in doc["stack"]["description"]
        and f"{name} profile" in doc["stack"]["description"]
    )
    assert doc["scenarios"]["list_certificates"]["postgres_profile"] == name
