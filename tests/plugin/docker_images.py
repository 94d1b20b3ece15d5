"""The base image the Docker tests run, and a Docker client whose engine has it (or a skip)."""

from __future__ import annotations

import os

import pytest

from pytest_certload.stack.docker import engine_answers

BASE_IMAGE = os.environ.get("CERTLOAD_DOCKER_BASE_IMAGE") or "certload/base:bookworm"


def client_with_base_image():
    """A ``docker.DockerClient`` whose engine has :data:`BASE_IMAGE`; skips without an engine or image."""
    if not engine_answers():
        pytest.skip("no Docker engine answers (DOCKER_HOST / /var/run/docker.sock)")
    import docker

    client = docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        client.close()
        pytest.skip(f"image {BASE_IMAGE} missing (bash docker-up.sh image)")
    return client
