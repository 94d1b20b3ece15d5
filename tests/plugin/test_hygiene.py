"""Repository hygiene (issue 11, part B): what CI checks about the repository itself.

- No tracked file over 1 MiB outside test data (a committed wheel once sat in the root). This is a
  test rather than a separate script so it runs wherever the suite runs - CI (``scripts/test.sh``)
  and a developer's plain ``pytest`` alike - and reports like every other check.
- The README opens with the project's name, one paragraph, and the two set-up commands (main job,
  then the tests); its test command and ``.ci/run`` both call ``scripts/test.sh``.
- Every repository path the README cites is tracked (a gitignored ``benchmarks/results/`` was cited).
- README examples spell options ``--option=value``: with a space, pytest takes a path-like value
  for a test path before plugins load, and the rootdir moves.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_BYTES = 1 << 20  # 1 MiB
TEST_DATA = re.compile(r"^tests/(?:[^/]+/)*(?:data|fixtures)/")  # large inputs belong there, if anywhere
REPO_PREFIXES = ("tests/", "pytest_certload/", "benchmarks/", "scripts/", "seeds/", ".ci/")
ROOT_DOC = re.compile(r"^[A-Z][A-Z_]*\.md$|^pyproject\.toml$")  # README.md, ARCHITECTURE.md, ...
SHELL_SEPARATORS = {"\\", "&&", "||", "|", ";", "&"}


@cache
def tracked_files() -> tuple[str, ...]:
    """Files git tracks, plus new ones not ignored (what the next ``git add -A`` would track)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    done = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    return tuple(p for p in done.stdout.split("\0") if p)


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def code_texts(markdown: str) -> list[str]:
    """Fenced code blocks (whole) and inline code spans, in order of appearance."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return blocks + re.findall(r"`([^`\n]+)`", prose)


def _clean(token: str) -> str:
    return token.strip("\"'[]()").rstrip(".,;:")


def cited_paths(markdown: str) -> list[str]:
    """Tokens in code that name something in this repository (or reach outside it with ``../``)."""
    found = []
    for text in code_texts(markdown):
        for raw in text.split():
            token = _clean(raw)
            if any(c in token for c in "<>{}$~") or "://" in token:
                continue  # a placeholder or a URL, not a path
            if token.startswith(REPO_PREFIXES) or token.startswith("../") or ROOT_DOC.match(token):
                found.append(token)
    return found


def is_tracked(path: str, files: tuple[str, ...]) -> bool:
    if any(c in path for c in "*?["):
        return any(fnmatch.fnmatch(f, path) for f in files)
    return path in files or any(f.startswith(path.rstrip("/") + "/") for f in files)


@cache
def pytest_flags() -> frozenset[str]:
    """Long options of this pytest (with our plugins and xdist) that take no value."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    flags = set()
    for line in done.stdout.splitlines():
        head = re.match(r"^  (-\S.*?)(?:\s{2,}|$)", line)  # option lines; descriptions are indented more
        if head:
            flags.update(re.findall(r"(--[\w-]+)(?![=\w-])", head.group(1)))
    return frozenset(flags)


def spaced_options(markdown: str, flags: frozenset[str]) -> list[str]:
    """``--option value`` uses (space instead of ``=``) in the README's code."""
    bad = []
    for text in code_texts(markdown):
        for line in text.splitlines():
            tokens = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
            for token, following in itertools.pairwise(tokens):
                name = _clean(token)
                if not re.fullmatch(r"--[\w-]+", name) or name in flags:
                    continue
                if following in SHELL_SEPARATORS or _clean(following).startswith("-"):
                    continue
                bad.append(f"{name} {following}")
    return bad


# -- large files -------------------------------------------------------------------------------------


def test_no_tracked_file_over_1_mib_outside_test_data() -> None:
    too_big = []
    for path in tracked_files():
        full = ROOT / path
        if TEST_DATA.match(path) or not full.is_file():
            continue  # test data may be large; a file deleted from the work tree is not shipped
        size = full.stat().st_size
        if size > MAX_BYTES:
            too_big.append(f"{path} ({size / MAX_BYTES:.1f} MiB)")
    assert not too_big, (
        "tracked files over 1 MiB (install tools from their registry; large test inputs go under "
        f"tests/**/data/): {too_big}"
    )


def test_test_data_pattern() -> None:
    assert TEST_DATA.match("tests/data/x.bin") and TEST_DATA.match("tests/plugin/fixtures/big.json")
    assert not TEST_DATA.match("py_spy-0.4.3-py2.py3-none-manylinux1_x86_64.whl")
    assert not TEST_DATA.match("tests/plugin/test_data.py")


# -- the README --------------------------------------------------------------------------------------


def test_readme_opens_with_name_paragraph_and_the_two_commands() -> None:
    text = readme_text()
    assert text.startswith("# pytest-certload\n\n"), "the README must open with the project's name"
    blocks = re.split(r"\n\s*\n", text.split("\n", 1)[1].strip(), maxsplit=1)
    paragraph, rest = blocks[0], blocks[1]
    assert not paragraph.startswith(("```", "#", "-", "|")), "one paragraph on what it is comes next"
    fence = re.match(r"```bash\n(.*?)\n```", rest, flags=re.DOTALL)
    assert fence, "then a code block with the set-up commands"
    commands = [ln for ln in fence.group(1).splitlines() if ln.strip()]
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "scripts/bootstrap.sh" in main_job and "scripts/main-job.sh" in main_job
    assert "scripts/bootstrap.sh" in tests and "scripts/test.sh" in tests


def test_readme_and_ci_run_the_same_test_script() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^bash scripts/test\.sh\b", ci, flags=re.MULTILINE), ".ci/run must call scripts/test.sh"
    assert "README.md" not in ci, ".ci/run must not parse the README for its command"
    assert re.search(r"^bash scripts/bootstrap\.sh\b", ci, flags=re.MULTILINE)
    assert "-eq 5" in ci and "down" in ci  # no tests collected is a failure; the engine goes down after
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert "pytest -p no:cacheprovider --certload-duration=3s" in script


def test_readme_cites_only_tracked_paths() -> None:
    files = tracked_files()
    cited = cited_paths(readme_text())
    assert "scripts/test.sh" in cited and "tests/contract/" in cited  # the extraction works
    missing = sorted({p for p in cited if p.startswith("../") or not is_tracked(p, files)})
    assert not missing, f"README cites paths that are not tracked in this repository: {missing}"


def test_path_extraction() -> None:
    text = (
        "Run `python benchmarks/bench_x.py --out=results/x.json`, see `seeds/*.toml` and `../shared/f.md`.\n"
    )
    text += "```bash\nbash scripts/test.sh   # the tests\npytest --certctl-url https://h:1\n```\n"
    text += "Not paths: `pytest_certload.plugin`, `results/summary.json`, `~/src/certctl/migrations`.\n"
    assert cited_paths(text) == ["scripts/test.sh", "benchmarks/bench_x.py", "seeds/*.toml", "../shared/f.md"]


def test_readme_spells_options_with_equals() -> None:
    bad = spaced_options(readme_text(), pytest_flags())
    assert not bad, (
        f"README examples must use --option=value (a spaced path value becomes a test path): {bad}"
    )


def test_spaced_option_detection() -> None:
    flags = frozenset({"--certload-list", "--certload-allow-external-load"})
    text = (
        "```bash\npytest --certload-summary results/s.json -m api\n"
        "pytest --certload-list   # no value\npytest --certload-allow-external-load \\\n  -m api\n"
        "pytest --certload-summary=results/s.json --dist load\n```\n"
        "Inline: `--certload-target NAME=URL` and `--certctl-bin`/`--certctl-image`.\n"
    )
    assert spaced_options(text, flags) == [
        "--certload-summary results/s.json",
        "--dist load",
        "--certload-target NAME=URL",
    ]
    assert {"--certload-list", "--certload-allow-external-load"} <= pytest_flags()
    assert not {"--certload-summary", "--dist", "--tx"} & pytest_flags()
