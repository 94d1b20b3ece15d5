"""--certctl: one choice (auto, standin, image:REF, bin:PATH, url:URL), its older spellings, and what
auto settles on - a given binary, the published image, or the stand-in with the reason said.

The options and the resolution are checked in-process with the engine replaced; the fallback
(no registry here) and "nothing is pulled unless a selected test needs the stack" in inner pytest
runs (test_certctl_choice_fallback.py).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_certload.stack import choice
from pytest_certload.stack import docker as docker_provider
from pytest_certload.stack.model import STANDIN_CAVEAT
from pytest_certload.stack.options import RELEASE_IMAGE, StackOptions, certctl_choice, parse_certctl


def getter(**given: str | None):
    """A config.getoption stand-in: '--certctl-bin' -> given['certctl_bin']."""
    return lambda name: given.get(name.lstrip("-").replace("-", "_"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("auto", ("auto", None)),
        ("standin", ("standin", None)),
        ("stand-in", ("standin", None)),
        (
            "image:ghcr.io/certctl-io/certctl-server:v2.1.7",
            ("image", "ghcr.io/certctl-io/certctl-server:v2.1.7"),
        ),
        ("bin:/opt/certctl-server", ("bin", "/opt/certctl-server")),
        ("url:https://certctl.test:8443", ("url", "https://certctl.test:8443")),
    ],
)
def test_certctl_forms(value: str, expected: tuple[str, str | None]) -> None:
    assert parse_certctl(value) == expected


@pytest.mark.parametrize("value", ["", "real", "image:", "bin", "docker:x", "file:/x"])
def test_bad_certctl_form_is_a_usage_error(value: str) -> None:
    with pytest.raises(pytest.UsageError, match="expected auto, standin, image:REF, bin:PATH or url:URL"):
        parse_certctl(value)


def test_older_spellings_are_the_same_choice() -> None:
    assert certctl_choice(getter()) == ("auto", None, "default --certctl=auto")
    assert certctl_choice(getter(certctl="auto")) == ("auto", None, "--certctl=auto")
    assert certctl_choice(getter(certctl_bin="/x/s"))[:2] == ("bin", "/x/s")
    assert certctl_choice(getter(certctl_image="r:1"))[:2] == ("image", "r:1")
    assert certctl_choice(getter(certctl_url="https://h:1"))[:2] == ("url", "https://h:1")
    # auto takes a given binary: no conflict; the same server named twice: no conflict
    assert certctl_choice(getter(certctl="auto", certctl_bin="/x/s"))[:2] == ("bin", "/x/s")
    assert certctl_choice(getter(certctl="image:r:1", certctl_image="r:1"))[:2] == ("image", "r:1")


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"certctl": "standin", "certctl_bin": "/x/s"}, ("--certctl=standin", "--certctl-bin=/x/s")),
        ({"certctl_bin": "/x/s", "certctl_image": "r:1"}, ("--certctl-bin=/x/s", "--certctl-image=r:1")),
        ({"certctl": "image:r:2", "certctl_image": "r:1"}, ("--certctl=image:r:2", "--certctl-image=r:1")),
        (
            {"certctl": "bin:/a", "certctl_url": "https://h:1"},
            ("--certctl=bin:/a", "--certctl-url=https://h:1"),
        ),
    ],
)
def test_conflicting_choices_name_both(given: dict, named: tuple[str, str]) -> None:
    with pytest.raises(pytest.UsageError) as err:
        certctl_choice(getter(**given))
    assert f"{named[0]} and {named[1]} name two different certctls" in str(err.value)


# -- resolution --------------------------------------------------------------------------------------


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The Docker engine as resolve() sees it: whether it answers, and what ensure_image says."""
    state = {"answers": True, "image": (False, "pull refused: no registry (test)"), "asked": []}
    monkeypatch.setattr(docker_provider, "engine_answers", lambda timeout=2.0: state["answers"])

    def ensure_image(ref: str, *args: object, **kwargs: object) -> tuple[bool, str]:
        state["asked"].append(ref)
        return state["image"]

    monkeypatch.setattr(docker_provider, "ensure_image", ensure_image)
    return state


def test_auto_takes_a_given_binary_without_asking_docker(engine: dict, tmp_path: Path) -> None:
    opts = choice.resolve(StackOptions(certctl_bin=tmp_path / "certctl-server", certctl_given="env X"))
    assert opts.certctl == "bin" and opts.fallback_reason is None
    assert opts.certctl_source == f"binary {tmp_path / 'certctl-server'} (env X)"
    assert engine["asked"] == []


def test_auto_takes_the_release_image_when_docker_has_it(engine: dict) -> None:
    engine["image"] = (True, "found on the engine")
    opts = choice.resolve(StackOptions())
    assert (opts.certctl, opts.certctl_image, opts.provider) == ("image", RELEASE_IMAGE, "docker")
    assert opts.server_kind == "image" and opts.fallback_reason is None
    assert opts.certctl_migrations is None  # the image's own migrations, never the env's
    assert engine["asked"] == [RELEASE_IMAGE]
    assert choice.resolve(opts) is opts  # once resolved, never again


@pytest.mark.parametrize(
    ("provider", "answers", "reason"),
    [
        (None, True, f"the certctl image {RELEASE_IMAGE} is not on this Docker engine: pull refused"),
        ("docker", True, "is not on this Docker engine: pull refused: no registry (test)"),
        (None, False, "no Docker engine answers"),
        ("native", True, "--certload-stack=native runs no container images"),
    ],
)
def test_auto_falls_back_to_the_standin_saying_why(
    engine: dict, provider: str | None, answers: bool, reason: str
) -> None:
    engine["answers"] = answers
    opts = choice.resolve(StackOptions(provider=provider))  # type: ignore[arg-type]
    assert opts.certctl == "standin" and opts.server_kind == "standin"
    assert reason in opts.fallback_reason
    banner = "\n".join(choice.banner_lines(opts))
    assert "certctl=auto fell back to the certctl stand-in: " + opts.fallback_reason in banner
    assert STANDIN_CAVEAT in banner


def test_explicit_choices_are_taken_as_given(engine: dict) -> None:
    standin = choice.resolve(StackOptions(certctl="standin", certctl_given="--certctl=standin"))
    assert (
        standin.fallback_reason is None
        and standin.certctl_source == "the certctl stand-in (--certctl=standin)"
    )
    assert STANDIN_CAVEAT in "\n".join(choice.banner_lines(standin))
    image = choice.resolve(
        StackOptions(certctl="image", certctl_image="r:1", certctl_given="--certctl=image:r:1")
    )
    assert image.certctl_source == "image r:1 (--certctl=image:r:1)"
    assert engine["asked"] == []  # nothing looked up: an explicit image that is missing fails the stack


# -- the options as pytest parses them ------------------------------------------------------------------


def run_pytest(path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=path, env=env)


def test_usage_errors_name_the_options(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    binary = tmp_path / "certctl-server"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTLOAD_CERTCTL_")}
    cases = {
        ("--certctl=standin", f"--certctl-bin={binary}"): (
            f"--certctl=standin and --certctl-bin={binary} name two different certctls"
        ),
        ("--certctl=image:r:1", "--certload-stack=native"): (
            "--certctl=image:r:1 runs in the docker stack, --certload-stack=native runs local processes"
        ),
        ("--certctl=url:https://h:1", "--certload-stack=docker"): (
            "--certctl=url:https://h:1 attaches to a running certctl, --certload-stack=docker starts one"
        ),
        ("--certctl=standin", "--certload-stack=external"): (
            "--certload-stack=external needs --certctl-url (or --certctl=url:URL), not --certctl=standin"
        ),
        ("--certctl=bin:/nonexistent/certctl",): "--certctl=bin:/nonexistent/certctl: no such file",
        (f"--certctl=bin:{binary}",): "--certctl=bin:PATH needs --certctl-migrations",
        ("--certctl=docker",): "--certctl=docker: expected auto, standin, image:REF, bin:PATH or url:URL",
    }
    for args, message in cases.items():
        done = run_pytest(tmp_path, *args, env=env)
        assert done.returncode == 4, (args, done.stdout, done.stderr)  # pytest's usage-error exit code
        assert message in done.stderr, (args, done.stderr)


@pytest.mark.skipif(not docker_provider.engine_answers(), reason="no Docker engine answers")
def test_ensure_image_looks_locally_then_gives_up_fast_on_a_pull() -> None:
    import docker

    client = docker.from_env()
    try:
        local = next((t for image in client.images.list() for t in image.tags), None)
    finally:
        client.close()
    if local is not None:
        assert docker_provider.ensure_image(local) == (True, "found on the engine")
    started = time.monotonic()
    ok, why = docker_provider.ensure_image("certload-test.invalid/no-such-image:never")
    assert not ok and why.startswith("pull refused: ")
    assert time.monotonic() - started < docker_provider.PULL_STALL_S + 5  # never hangs
