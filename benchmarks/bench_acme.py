"""Generator CPU per issued ACME certificate, and the highest issuance rate one process drives.

Part 1, client CPU per certificate (process CPU over N repetitions, no server): what the ACME
client does per issuance besides sending requests -- five JWS signatures (new-order, authz,
finalize, order poll, certificate download), a fresh P-256 key (reported apart), a CSR, parsing
five JSON answers, and verifying the downloaded chain (RFC 5280 path to our CA, SANs, key).
Signing is measured with joserfc (what the client uses), josepy (certbot's, when installed) and a
hand-rolled ``cryptography`` + base64url baseline that shows what a library costs.
Goal: <= 0.5 ms per certificate excluding keygen.

Part 2, the issuance rate one generator process drives: a PostgreSQL + certctl stand-in started
here (the contract suite's session: tests/contract/conftest.py), our CA registered as iss-local,
then constant-arrival-rate phases of ``AcmeScenario.issuance()`` at rising rates. A rate holds
when every iteration issued a verified certificate, none was dropped, the achieved rate is within
2 % of target and the generator stayed within its health bounds (lag p99 <= 10 ms, CPU <= 85 % of
a core). For each rate the generator's CPU per issued certificate (engine and HTTP included) is
recorded, and what gave out first: the generator (health) or the server (drops, errors, latency).
The stand-in is Python on the same 2 cores, so the sweep usually ends at the server; the
generator's ceiling is then extrapolated from its CPU per certificate.

    python benchmarks/bench_acme.py [--repeat 2000] [--seconds 5] [--rates 10,20,40,60,80,120]

Writes ``benchmarks/results/acme.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

from pytest_certload.scenarios.acme_certs import IssuerCA, Trust, new_csr, new_key, verify_issued  # noqa: E402
from pytest_certload.scenarios.acme_client import AccountKey, sign  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
GOAL_MS = 0.5
JWS_PER_CERT = 5
URL = "https://127.0.0.1:8443/acme/profile/prof-test/order/acme-ord-0123456789abcdef/finalize"
KID = "https://127.0.0.1:8443/acme/profile/prof-test/account/acme-acc-" + "x" * 43
NONCE = "A" * 43
ORDER_JSON = json.dumps(
    {
        "status": "valid",
        "expires": "2026-12-02T11:31:04Z",
        "identifiers": [{"type": "dns", "value": "a.acme.certload.test"}],
        "authorizations": ["https://127.0.0.1:8443/acme/profile/prof-test/authz/acme-authz-0123456789abcdef"],
        "finalize": URL,
        "certificate": "https://127.0.0.1:8443/acme/profile/prof-test/cert/mc-acme-0123456789abcdef",
    }
).encode()


def per_call_us(fn, repeat: int) -> float:
    fn()  # warm
    t0 = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - t0) / repeat * 1e6


def leaf_for(ca: IssuerCA, ca_key, names: list[str], key) -> bytes:
    """What the server sends: a leaf from our CA (as certctl's local issuer makes it) + the CA."""
    now = dt.datetime.now(dt.UTC)
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.AuthorityKeyIdentifier(ski, None, None), False)
        .sign(ca_key, hashes.SHA256())
    )
    return leaf.public_bytes(serialization.Encoding.PEM) + ca.cert.public_bytes(serialization.Encoding.PEM)


def josepy_signer():
    try:
        import josepy as jose
    except ImportError:
        return None

    class Header(jose.Header):
        nonce: str | None = jose.field("nonce", omitempty=True)
        url: str | None = jose.field("url", omitempty=True)

    class Signature(jose.Signature):
        __slots__ = tuple(s for s in jose.Signature._orig_slots if s != "header")
        header_cls = Header
        header: Header = jose.field("header", omitempty=True, default=Header(), decoder=Header.from_json)

    class JWS(jose.JWS):
        signature_cls = Signature
        __slots__ = jose.JWS._orig_slots

    jwk = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    protect = frozenset(["alg", "nonce", "url", "kid"])

    def run() -> bytes:
        jws = JWS.sign(
            b"{}", key=jwk, alg=jose.ES256, protect=protect, nonce=NONCE, url=URL, kid=KID, include_jwk=False
        )
        return jws.json_dumps().encode()

    return run


def hand_rolled_signer():
    key = ec.generate_private_key(ec.SECP256R1())

    def b64(b: bytes) -> bytes:
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    def run() -> bytes:
        prot = b64(json.dumps({"alg": "ES256", "kid": KID, "nonce": NONCE, "url": URL}).encode())
        payload = b64(b"{}")
        r, s = decode_dss_signature(key.sign(prot + b"." + payload, ec.ECDSA(hashes.SHA256())))
        sig = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return b'{"protected":"' + prot + b'","payload":"' + payload + b'","signature":"' + sig + b'"}'

    return run


def client_cpu(repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ca = IssuerCA.create(Path(tmp))
        ca_key = serialization.load_pem_private_key(ca.key_path.read_bytes(), None)
    trust = Trust.registered(ca.cert)
    names = ["bench-0123456789.acme.certload.test"]
    key = new_key()
    chain = leaf_for(ca, ca_key, names, key)
    account = AccountKey("ES256")
    rsa_account = AccountKey("RS256")
    out = {
        "keygen_p256_us": per_call_us(new_key, repeat),
        "csr_us": per_call_us(lambda: new_csr(names, key), repeat),
        "jws_joserfc_es256_us": per_call_us(lambda: sign(account, URL, NONCE, b"{}", KID), repeat),
        "jws_joserfc_rs256_us": per_call_us(
            lambda: sign(rsa_account, URL, NONCE, b"{}", KID), max(50, repeat // 10)
        ),
        "jws_hand_rolled_es256_us": per_call_us(hand_rolled_signer(), repeat),
        "json_parse_us": per_call_us(lambda: json.loads(ORDER_JSON), repeat),
        "verify_chain_us": per_call_us(lambda: verify_issued(chain, trust, names, key), repeat),
    }
    josepy = josepy_signer()
    out["jws_josepy_es256_us"] = per_call_us(josepy, repeat) if josepy else None
    per_cert = JWS_PER_CERT * (out["jws_joserfc_es256_us"] + out["json_parse_us"]) + out["csr_us"]
    per_cert += out["verify_chain_us"]
    out["per_cert_excluding_keygen_ms"] = per_cert / 1000
    out["per_cert_with_josepy_ms"] = (
        (per_cert + JWS_PER_CERT * (out["jws_josepy_es256_us"] - out["jws_joserfc_es256_us"])) / 1000
        if josepy
        else None
    )
    out["goal_ms"] = GOAL_MS
    out["meets_goal"] = out["per_cert_excluding_keygen_ms"] <= GOAL_MS
    return out


def sweep(rates: list[int], seconds: float) -> dict:
    from pytest_certload.engine import ScenarioRun, run_phase
    from pytest_certload.engine.http import make_ssl_context
    from pytest_certload.engine.spec import ExecutorSpec
    from pytest_certload.scenarios.acme_issuance import AcmeScenario, prepare
    from pytest_certload.stack.model import Stack
    from tests.contract.conftest import Session, ensure_prof_test

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-acme-") as tmp:
        session = Session(Path(tmp))
        try:
            dsn = session.database("bench_acme")
            base = session.start("stand-in", dsn, None, False)
            ensure_prof_test(dsn)
            stack = Stack("native", base, session.token, session.tls.ca_cert, "stand-in", True, dsn=dsn)
            setup = prepare(stack, Path(tmp) / "issuer")
            ctx = make_ssl_context(session.tls.ca_cert)
            for rate in rates:
                scenario = AcmeScenario(setup)
                spec = ExecutorSpec.from_options(
                    {
                        "executor": "constant-arrival-rate",
                        "rate": rate,
                        "time_unit": "1s",
                        "duration": f"{seconds}s",
                        "pre_allocated_vus": 20,
                        "max_vus": 400,
                    }
                )
                m = run_phase([ScenarioRun("acme_issuance", spec, scenario.issuance())], ssl_context=ctx)
                s, h = m.samples, m.health
                issued = s.select_counter("acme_certs_issued")
                dropped = s.select_counter("dropped_iterations")
                trues, _ = s.select_rate("acme_order_failed")
                e2e = s.trend_stats("acme_issuance_duration") if issued else {}
                cpu_s = h.cpu_fraction * h.wall_seconds
                row = {
                    "rate": rate,
                    "issued": issued,
                    "achieved_per_s": issued / seconds,
                    "failed_orders": trues,
                    "dropped": dropped,
                    "issuance_p95_ms": e2e.get("p(95)"),
                    "lag_p99_ms": h.lag_p99_ms,
                    "generator_cpu_fraction": h.cpu_fraction,
                    "generator_cpu_per_cert_ms": cpu_s / issued * 1000 if issued else None,
                    "generator_saturated": h.saturated,
                    "held": bool(
                        issued
                        and not trues
                        and not dropped
                        and issued >= 0.98 * rate * seconds
                        and not h.saturated
                    ),
                }
                errors = [(dict(t), n) for (name, t), n in s.counters.items() if name == "acme_errors" and n]
                row["errors"] = [
                    {k: v for k, v in t.items() if k != "scenario"} | {"n": n} for t, n in errors
                ]
                row["gave_out"] = "generator" if h.saturated else ("server" if not row["held"] else "")
                rows.append(row)
                print(json.dumps(row), flush=True)
                if not row["held"]:
                    break
        finally:
            session.close()
    held = [r for r in rows if r["held"]]
    per_cert = [r["generator_cpu_per_cert_ms"] for r in held if r["generator_cpu_per_cert_ms"]]
    best = min(per_cert) if per_cert else None
    return {
        "rows": rows,
        "highest_rate_held": held[-1]["rate"] if held else None,
        "limited_by": rows[-1]["gave_out"] if rows and not rows[-1]["held"] else "sweep ended",
        "generator_cpu_per_cert_ms": best,
        "generator_ceiling_per_s_at_85pct_cpu": 0.85 / (best / 1000) if best else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rates", default="10,20,40,60,80,120,160")
    p.add_argument("--skip-sweep", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "acme.json")
    args = p.parse_args()
    report = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "client_cpu": client_cpu(args.repeat),
    }
    print(json.dumps(report["client_cpu"], indent=2), flush=True)
    if not args.skip_sweep:
        report["issuance_rate"] = sweep([int(r) for r in args.rates.split(",")], args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    c = report["client_cpu"]
    print(
        f"client CPU per certificate excluding keygen: {c['per_cert_excluding_keygen_ms']:.3f} ms "
        f"(goal {GOAL_MS} ms: {'met' if c['meets_goal'] else 'missed'}); keygen {c['keygen_p256_us']:.0f} us"
    )
    if "issuance_rate" in report:
        r = report["issuance_rate"]
        print(
            f"highest issuance rate held: {r['highest_rate_held']}/s (then limited by {r['limited_by']}); "
            f"generator CPU per certificate {r['generator_cpu_per_cert_ms']} ms"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
