"""--certctl=auto where certctl cannot be had (these machines: no binary given, no registry): the run
falls back to the stand-in, says why at session start, and every verdict and report carries the
stand-in's caveat. And nothing is looked up or pulled unless a selected test needs a stack."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree

import pytest

from pytest_certload.stack.docker import engine_answers
from pytest_certload.stack.model import STANDIN_CAVEAT
from pytest_certload.stack.options import RELEASE_IMAGE

BASE_IMAGE = os.environ.get("CERTLOAD_DOCKER_BASE_IMAGE") or "certload/base:bookworm"
FALLBACK = "certctl=auto fell back to the certctl stand-in: "

STACK_TEST = """
import pytest

from pytest_certload.scenarios import api

CAR = dict(executor="constant-arrival-rate", rate=5, time_unit="1s", duration="1s", pre_allocated_vus=2)


@pytest.mark.certload(**CAR, thresholds={"http_req_failed": ["rate<0.01"]})
def test_list(certload, certload_stack):
    certload.run(api.list_certificates(certload_stack), name="list_certificates").assert_thresholds()
"""


def _image_present(ref: str) -> bool:
    import docker

    client = docker.from_env()
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


@pytest.fixture
def no_certctl(monkeypatch: pytest.MonkeyPatch) -> str:
    """No binary in the environment; the reason auto is expected to give on this machine."""
    for name in ("CERTLOAD_CERTCTL_BIN", "CERTLOAD_CERTCTL_MIGRATIONS", "CERTLOAD_CERTCTL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    if not engine_answers():
        return "no Docker engine answers"
    if not _image_present(BASE_IMAGE):
        pytest.skip(f"image {BASE_IMAGE} missing (bash docker-up.sh image): the docker stack cannot start")
    if _image_present(RELEASE_IMAGE):
        pytest.skip(f"{RELEASE_IMAGE} is on this engine: --certctl=auto takes it, there is no fallback")
    monkeypatch.setenv("CERTLOAD_DOCKER_BASE_IMAGE", BASE_IMAGE)
    return f"the certctl image {RELEASE_IMAGE} is not on this Docker engine: pull refused: "


def test_auto_without_certctl_falls_back_and_every_report_says_so(
    pytester: pytest.Pytester, no_certctl: str
) -> None:
    pytester.makepyfile(test_choice=STACK_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "--certctl=auto", "--certload-summary=s.json", "--junitxml=j.xml",
        timeout=240,
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    out = result.stdout.lines
    # the banner, at session start: before the test runs
    banner = next(i for i, line in enumerate(out) if line.startswith("certload: " + FALLBACK))
    assert no_certctl in out[banner]
    assert banner < next(i for i, line in enumerate(out) if "test_choice.py::test_list" in line)
    assert f"certload: {STANDIN_CAVEAT}" in out[banner + 1 :]
    # the certload table: the target, the caveat, why, and the caveat next to the verdict
    result.stdout.fnmatch_lines(
        [
            "*= certload =*",
            "target: certctl stand-in",
            f"  {STANDIN_CAVEAT}",
            f"  {FALLBACK}{no_certctl}*",
            "  postgres: PostgreSQL *, durable profile (*fsync=on*",
            f"list_certificates *ok 1/1 ({STANDIN_CAVEAT})",
        ]
    )
    # the summary JSON
    doc = json.loads((pytester.path / "s.json").read_text())
    stack = doc["stack"]
    assert stack["server"] == "stand-in" and stack["target"] == "certctl stand-in"
    assert stack["caveat"] == STANDIN_CAVEAT and STANDIN_CAVEAT in stack["description"]
    assert no_certctl in stack["fallback_reason"] and stack["certctl_choice"] == "--certctl=auto"
    assert doc["scenarios"]["list_certificates"]["caveat"] == STANDIN_CAVEAT
    # JUnit XML: the test's properties
    props = {
        p.get("name"): p.get("value") for p in ElementTree.parse(pytester.path / "j.xml").iter("property")
    }
    assert props["certload_target"] == "certctl stand-in" and props["certload_caveat"] == STANDIN_CAVEAT
    assert no_certctl in props["certload_fallback"]


RECORDING_CONFTEST = """
import os

from pytest_certload.stack import docker


def ensure_image(ref, *args, **kwargs):
    with open(os.environ["CERTLOAD_TEST_LOOKUPS"], "a") as f:
        f.write(ref + "\\n")
    return False, "pull refused: recorded by the test"


docker.ensure_image = ensure_image
docker.engine_answers = lambda timeout=2.0: True
"""

LOOKUP_TESTS = """
def test_plain():
    pass


def test_variant(certload_stack_variant):
    pass  # asks for the fixture, starts nothing


def test_stack(certload_stack):
    pass
"""


@pytest.mark.parametrize(
    ("args", "looked_up"),
    [
        (("--collect-only",), False),
        (("--certload-list",), False),
        (("-k", "test_plain"), False),
        (("-k", "test_variant"), True),
    ],
    ids=["collect-only", "certload-list", "no-stack-test-selected", "stack-fixture-selected"],
)
def test_nothing_is_looked_up_unless_a_selected_test_needs_a_stack(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], looked_up: bool
) -> None:
    for name in ("CERTLOAD_CERTCTL_BIN", "CERTLOAD_CERTCTL_MIGRATIONS"):
        monkeypatch.delenv(name, raising=False)
    record = pytester.path / "lookups.txt"
    monkeypatch.setenv("CERTLOAD_TEST_LOOKUPS", str(record))
    pytester.makeconftest(RECORDING_CONFTEST)
    pytester.makepyfile(test_lookups=LOOKUP_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--certload-stack=docker", *args)
    assert result.ret in (0, 5), result.stdout.str()
    assert record.exists() is looked_up
    banner = [line for line in result.stdout.lines if line.startswith("certload: " + FALLBACK)]
    if looked_up:
        assert record.read_text() == f"{RELEASE_IMAGE}\n"  # once, and the pinned release
        assert banner and "pull refused: recorded by the test" in banner[0]
    else:
        assert not banner


def test_header_says_what_auto_will_try_without_looking(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CERTLOAD_CERTCTL_BIN", "CERTLOAD_CERTCTL_MIGRATIONS"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--certctl=auto", "--collect-only")
    result.stdout.fnmatch_lines(
        [
            f"certload: certctl: --certctl=auto -> *image {RELEASE_IMAGE} if Docker has it or can pull it, "
            "else the certctl stand-in*",
            "certload: PostgreSQL profile: durable (*",
        ]
    )
    standin = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--certctl=standin", "--collect-only")
    standin.stdout.fnmatch_lines(["certload: certctl: --certctl=standin -> the certctl stand-in"])
