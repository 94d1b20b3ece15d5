"""The private parts of pytest-xdist this package relies on, in one place, with the versions tested.

Where xdist has a public hook we use it (``pytest_xdist_make_scheduler``, ``pytest_configure_node``).
Two things have none:

- holding the workers' reports of a load test until all of them finished it, and emitting one merged
  report: done by wrapping the controller's ``DSession`` event handlers (:data:`DSESSION_HANDLERS`);
- sending one test to *every* worker in ``load`` mode: done by extending ``LoadScheduling`` and using
  its internal state (:data:`LOAD_SCHEDULING_ATTRS`).

``pyproject.toml`` pins pytest-xdist to the versions tested (:data:`TESTED`); a test
(``tests/plugin/test_xdist_internals.py``) fails loudly when the installed xdist lacks any of these,
and split mode refuses to start with the same message rather than misbehave.
"""

from __future__ import annotations

from importlib.metadata import version

#: the pytest-xdist versions split mode was tested with (pyproject.toml: >=3.8,<3.9)
TESTED = ("3.8",)

#: DSession methods wrapped by the controller's ReportMerger
DSESSION_HANDLERS = (
    "worker_testreport",
    "worker_logstart",
    "worker_logfinish",
    "worker_errordown",
    "handle_crashitem",
)

#: LoadScheduling internals used by SplitScheduling (attributes set in __init__, and methods)
LOAD_SCHEDULING_ATTRS = ("collection", "node2collection", "node2pending", "pending", "maxschedchunk")
LOAD_SCHEDULING_METHODS = ("_check_nodes_have_same_collection", "check_schedule", "remove_node", "schedule")

#: xdist.workermanage.parse_tx_spec_config: how many workers the --tx/-n specs ask for
WORKERMANAGE_FUNCTIONS = ("parse_tx_spec_config",)


def missing() -> list[str]:
    """The private xdist names this package needs that the installed xdist lacks."""
    import inspect
    import re

    from xdist import dsession, workermanage
    from xdist.scheduler import LoadScheduling

    gone = [f"DSession.{n}" for n in DSESSION_HANDLERS if not hasattr(dsession.DSession, n)]
    gone += [f"LoadScheduling.{n}" for n in LOAD_SCHEDULING_METHODS if not hasattr(LoadScheduling, n)]
    init = inspect.getsource(LoadScheduling.__init__)
    assigned = set(re.findall(r"self\.(\w+)\b[^=\n]*=", init))
    gone += [f"LoadScheduling.{n}" for n in LOAD_SCHEDULING_ATTRS if n not in assigned]
    gone += [f"workermanage.{n}" for n in WORKERMANAGE_FUNCTIONS if not hasattr(workermanage, n)]
    return gone


def check() -> None:
    """Raise a clear error when split mode cannot work with the installed pytest-xdist."""
    gone = missing()
    if gone:
        raise RuntimeError(
            f"pytest-certload's xdist split mode was tested with pytest-xdist {', '.join(TESTED)}.x; the "
            f"installed {version('pytest-xdist')} lacks {', '.join(gone)}. Install a tested version "
            "(pip install 'pytest-xdist>=3.8,<3.9') or run without -n."
        )
