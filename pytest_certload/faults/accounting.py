"""Lost and duplicated work after a fault, for the API mix's certificate creations.

:class:`CertificateLedger` listens to the load's requests (``FaultWatch.listeners``): every
``POST /api/v1/certificates`` the server acknowledged (201, with the new row's id) and every one
that failed without an answer (connection error or timeout: created or not, nobody knows). After
the fault, :meth:`CertificateLedger.counts` asks PostgreSQL:

* ``lost_work``: acknowledged certificates whose row is not there (a 201 that did not survive);
* ``duplicated_work``: extra rows for a name the load created once (a retried or replayed write);
* ``unacknowledged_created``: failed POSTs whose row exists anyway (informational, not a loss);
* ``audit_rows_missing`` (certctl only, ``audit=True``): acknowledged POSTs without their audit
  row. certctl's API audit middleware records every call *after* the response, in a goroutine
  (internal/api/middleware/audit.go:96-186, 235-246: action ``api_post``, resource_id the path, the
  request body's SHA-256 and the status in ``details``), so each acknowledged POST is matched by
  its body hash; a crash between the answer and that goroutine's INSERT loses the row. (The
  handler's CreateCertificate writes no ``certificate_created`` row: that is only on the
  service's transactional ``Create`` path, internal/service/certificate.go:195-221 vs 501-524.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from typing import Any

from pytest_certload.stack.secret import DsnSecret, connect_pg

PATH = "/api/v1/certificates"
FOUND = "SELECT id FROM managed_certificates WHERE id = ANY(%s)"
AUDITED = (
    "SELECT count(DISTINCT details->>'body_hash') FROM audit_events WHERE action = 'api_post' "
    "AND resource_id = %s AND details->>'status' = '201' AND details->>'body_hash' = ANY(%s)"
)
PER_NAME = "SELECT common_name, count(*) FROM managed_certificates WHERE common_name = ANY(%s) GROUP BY 1"


class CertificateLedger:
    def __init__(self, dsn: DsnSecret, *, audit: bool = False) -> None:
        self.dsn, self.audit = dsn, audit
        self.acknowledged: dict[str, str] = {}  # id -> name
        self.body_hashes: list[str] = []  # SHA-256 of each acknowledged POST's body (audit matching)
        self.unanswered: set[str] = set()  # names of POSTs that got no answer
        self._lock = threading.Lock()

    def listen(self, method: str, url: str, body: bytes | None, resp: Any) -> None:
        """A FaultWatch listener: note creations (called on the event loop, cheap)."""
        if method != "POST" or not url.split("?", 1)[0].endswith(PATH):
            return
        if resp.status == 201:
            try:
                doc = json.loads(resp.body)
                self.acknowledged[str(doc["id"])] = str(doc.get("common_name") or doc.get("name"))
            except (ValueError, KeyError, TypeError):
                return
            if body:
                self.body_hashes.append(hashlib.sha256(body).hexdigest())
        elif resp.status == 0 and body:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.unanswered.add(str(json.loads(body)["name"]))

    def counts(self) -> dict[str, int]:
        ids, names = list(self.acknowledged), list(set(self.acknowledged.values()) | self.unanswered)
        with connect_pg(self.dsn, connect_timeout=10) as conn:
            found = {r[0] for r in conn.execute(FOUND, (ids,))}
            rows = conn.execute(PER_NAME, (names,)).fetchall()
            audited = 0
            if self.audit:
                audited = conn.execute(AUDITED, (PATH, self.body_hashes)).fetchone()[0]
        per_name = dict(rows)
        result = {
            "lost_work": len(set(ids) - found),
            "duplicated_work": sum(n - 1 for n in per_name.values() if n > 1),
            "unacknowledged_created": sum(1 for n in self.unanswered if per_name.get(n)),
            "acknowledged_writes": len(ids),
        }
        if self.audit:
            result["audit_rows_missing"] = len(self.body_hashes) - int(audited)
        return result
