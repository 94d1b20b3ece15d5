"""Faults injected during a load phase, and what they did to the load (issue 18).

One module per idea: ``injector`` (the interface: inject, undo, events, always undone on exit),
``restart`` (certctl / PostgreSQL restarted by the stack's provider), ``postgres_slow`` (a slow
window without a restart), ``network`` + ``relay`` (delay and loss on a link in a namespace the
test creates), ``watch`` (the load's requests around the fault -> recovery figures), ``driver``
(the fault as one more scenario of the phase, its figures recorded as metrics thresholds judge),
``accounting`` (lost and duplicated work in the database afterwards).
"""

from pytest_certload.faults.accounting import CertificateLedger
from pytest_certload.faults.driver import fault_failure, fault_scenario
from pytest_certload.faults.injector import FaultEvent, Injector
from pytest_certload.faults.network import NetworkFault, NetworkUnavailable
from pytest_certload.faults.postgres_slow import PostgresSlow
from pytest_certload.faults.restart import ComponentRestart, certctl_restart, postgres_restart
from pytest_certload.faults.watch import FaultWatch

__all__ = [
    "CertificateLedger",
    "ComponentRestart",
    "FaultEvent",
    "FaultWatch",
    "Injector",
    "NetworkFault",
    "NetworkUnavailable",
    "PostgresSlow",
    "certctl_restart",
    "fault_failure",
    "fault_scenario",
    "postgres_restart",
]
