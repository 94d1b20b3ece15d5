"""certctl's known defects on the ACME issuance path, cited once, named in every failure message.

Read in certctl's source at commit ``151107c`` (paths relative to its repository) and confirmed
against a server built from it. The ACME scenarios name the defect that explains what they saw
(:func:`explain`); the contract suite pins each one against the real server
(``tests/contract/test_acme_divergences.py``), so a certctl that fixes one fails that pin and the
entry can go.
"""

from __future__ import annotations

from pytest_certload.scenarios.defects import Defect, catalogue

DEFECTS: dict[str, Defect] = catalogue(
    Defect(
        "finalize-empty-fks",
        "finalize inserts the certificate with empty owner_id, team_id and renewal_policy_id",
        "internal/service/acme_orders.go:387-401, migrations/000001_initial_schema.up.sql:79-82",
        "the managed_certificates INSERT violates managed_certificates_owner_id_fkey, finalize answers "
        "500 serverInternal and the order stays 'processing' (no certificate is ever issued)",
    ),
    Defect(
        "finalize-empty-fingerprint",
        "finalize stores the certificate version with an empty fingerprint_sha256 (NOT NULL UNIQUE)",
        "internal/service/acme_orders.go:406-419, migrations/000001_initial_schema.up.sql:131",
        "even where the owner/team/policy FKs are satisfied, the second issuance in a database fails "
        "with 500 serverInternal, leaving an orphan certificate row and the order 'processing'",
    ),
    Defect(
        "issuer-from-go-map",
        "finalize and ARI use the first entry of a Go map of all registered issuers",
        "internal/service/acme.go:802-810 (callers acme_orders.go:360, acme.go:1076)",
        "with more than one enabled issuer the issuing CA (and the ARI lookup) is chosen at random",
    ),
    Defect(
        "stuck-orders-block-account",
        "orders left 'processing' count against the concurrent-orders cap forever",
        "internal/repository/postgres/acme.go:760-772, internal/service/acme_orders.go:104-110, "
        "cmd/server/main.go:1370 vs 1434-1441 (the ACME GC loop is attached after the scheduler started)",
        "after 5 failed finalizes an account gets 429 rateLimited on every new-order, for good",
    ),
    Defect(
        "no-nonce-on-errors",
        "error responses carry no Replay-Nonce",
        "internal/api/acme/errors.go:116-127",
        "every failed request costs the client a new-nonce round trip (RFC 8555 §6.5 says SHOULD)",
    ),
    Defect(
        "no-retry-after-on-429",
        "rateLimited problems carry no Retry-After",
        "internal/api/handler/acme.go:277-293; RateLimiter.RetryAfter "
        "(internal/api/acme/ratelimit.go:91-119) has no caller",
        "a client told 429 is not told when to come back",
    ),
    Defect(
        "csr-mismatch-is-500",
        "a CSR whose names differ from the order's is answered 500 serverInternal, not 400 badCSR",
        "internal/service/acme_orders.go:304-314 returns a plain error, "
        "internal/api/handler/acme.go:294-299 maps it to serverInternal",
        "the order is marked invalid with a badCSR error, but the response says 'ACME server error'",
    ),
    Defect(
        "refinalize-valid-is-403",
        "finalize of an order that is already 'valid' is 403 orderNotReady",
        "internal/service/acme_orders.go:293-302 (the idempotent branch after the status check "
        "is unreachable)",
        "a client retrying a finalize whose answer it lost gets an error for an issued certificate",
    ),
    Defect(
        "ari-serial-leading-zero",
        "ARI looks serials up without leading zeros; the local issuer stores 40 zero-padded hex digits",
        "internal/api/acme/ari.go:74-83 vs internal/connector/issuer/local/local.go:776-778",
        "renewal-info answers 404 for about 1 in 8 certificates certctl issued itself",
    ),
)


def explain(*keys: str) -> str:
    """The lines naming ``keys``, for a failure message."""
    return "\n".join(DEFECTS[k].line() for k in keys)
