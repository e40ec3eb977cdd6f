"""The operator's fault suite: the integration tier's cluster, namespaces, databases and
operator (imported from there), and a table of figures printed at the end of the run.

`make integration` (so `make test`) runs the short version with the rest of tests/faults: a few
kills, the hostile-manifest corpus and the Secret canary. Tests marked `full` (the long kill
storm, the outages, what on-call tries) run only with KUBEMIGRATE_FAULTS=full, as `make faults`
sets it (with `-m "not short"`, since the full storm replaces the short one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from faults.operator.figures import FIGURES, table
from integration.conftest import cluster, crds, dev_image, kube_api, kubectl, namespace  # noqa: F401
from integration.operator.conftest import db_secret, operator, start_operator  # noqa: F401

FULL = os.environ.get("KUBEMIGRATE_FAULTS") == "full"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if FULL:
        return
    skip = pytest.mark.skip(reason="a long fault run: KUBEMIGRATE_FAULTS=full (make faults)")
    for item in items:
        if item.get_closest_marker("full") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _figures_reset() -> Iterator[None]:
    FIGURES.clear()
    yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("operator fault suite figures")
        terminalreporter.write_line(table())
