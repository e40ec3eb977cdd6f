"""The fault suite's fixtures: the integration tiers' cluster, namespaces, databases and operator
(imported from there), and a table of figures printed at the end of the run.

`make faults` runs it whole (`-m "not short"`); `make test` runs the short version
(`-m "not full"`): a few kills, the hostile-manifest corpus and the Secret canary.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faults.figures import FIGURES, table
from integration.conftest import cluster, crds, kube_api, kubectl, namespace  # noqa: F401
from integration.operator.conftest import db_secret, operator, start_operator  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _figures_reset() -> Iterator[None]:
    FIGURES.clear()
    yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("fault suite figures")
        terminalreporter.write_line(table())
