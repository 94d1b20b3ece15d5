"""--certctl=auto where the engine has certctl's published image: the docker stack runs it (its
entrypoint, its own /app/migrations, its user; from a working directory without web/), and nothing
says "stand-in". No registry here, so the image is built locally in the published image's layout
(certctl's Dockerfile) from the certctl binary in CERTLOAD_CERTCTL_BIN, and stands in for the
pinned release by patching ``choice.RELEASE_IMAGE`` in the inner run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_images import BASE_IMAGE, client_with_base_image  # this directory is on sys.path

from pytest_certload.stack.model import STANDIN_CAVEAT

TAG = "certload/certctl-server-test:published-layout"

DOCKERFILE = f"""
FROM {BASE_IMAGE}
RUN groupadd -g 1000 certctl && useradd -u 1000 -g certctl -M certctl
WORKDIR /app
COPY server /app/server
COPY migrations /app/migrations
COPY web /app/web
RUN chown -R certctl:certctl /app
USER certctl
EXPOSE 8443
ENTRYPOINT ["/app/server"]
"""

STACK_TEST = """
import pytest

from pytest_certload.scenarios import api

CAR = dict(executor="constant-arrival-rate", rate=5, time_unit="1s", duration="1s", pre_allocated_vus=2)


@pytest.mark.certload(**CAR, thresholds={"http_req_failed": ["rate<0.01"]})
def test_list(certload, certload_stack):
    certload.run(api.list_certificates(certload_stack), name="list_certificates").assert_thresholds()
"""


@pytest.fixture(scope="module")
def published_layout_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, migrations = os.environ.get("CERTLOAD_CERTCTL_BIN"), os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS")
    if not (binary and migrations):
        pytest.skip("needs env CERTLOAD_CERTCTL_BIN and CERTLOAD_CERTCTL_MIGRATIONS (to build the image)")
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI (the image is built with `docker build`)")
    client = client_with_base_image()
    context = tmp_path_factory.mktemp("image")
    shutil.copy(binary, context / "server")
    shutil.copytree(migrations, context / "migrations")
    (context / "web" / "dist").mkdir(parents=True)  # the dashboard certctl must not serve here
    (context / "web" / "dist" / "index.html").write_text("<html>dashboard</html>\n")
    (context / "Dockerfile").write_text(DOCKERFILE)
    done = subprocess.run(
        ["docker", "build", "-q", "-t", TAG, str(context)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    yield TAG
    try:
        client.images.remove(TAG, force=True)
    finally:
        client.close()


def test_auto_runs_the_release_image_the_engine_has(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, published_layout_image: str
) -> None:
    for name in ("CERTLOAD_CERTCTL_BIN", "CERTLOAD_CERTCTL_MIGRATIONS"):
        monkeypatch.delenv(name)
    pytester.makeconftest(
        f"from pytest_certload.stack import choice\n\nchoice.RELEASE_IMAGE = {published_layout_image!r}\n"
    )
    pytester.makepyfile(test_choice=STACK_TEST)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--certctl=auto", "--certload-stack=docker",
        "--certload-docker-network=host", f"--certload-base-image={BASE_IMAGE}", "--certload-summary=s.json",
        timeout=300,
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    text = result.stdout.str()
    assert f"certload: certctl: image {published_layout_image} (found on the engine; --certctl=auto)" in text
    assert STANDIN_CAVEAT not in text and "fell back" not in text and "target: certctl stand-in" not in text
    result.stdout.fnmatch_lines(["target: certctl *", "list_certificates *ok 1/1"])
    doc = json.loads((Path(pytester.path) / "s.json").read_text())
    stack = doc["stack"]
    assert stack["server"] == "certctl" and stack["caveat"] is None and stack["fallback_reason"] is None
    assert stack["components"]["certctl"]["image"] == published_layout_image
    assert doc["scenarios"]["list_certificates"]["caveat"] is None
    assert STANDIN_CAVEAT not in json.dumps(doc)
