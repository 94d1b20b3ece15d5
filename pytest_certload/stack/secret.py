"""Secrets that cannot be printed: the admin token, the bootstrap token, a DSN with its password.

A :class:`Secret` is *not* a ``str``. ``repr()``, ``str()``, f-strings, ``%`` and ``format`` give a
mask; ``json.dumps`` and ``pickle`` refuse it; ``dataclasses.asdict``/``copy`` keep the object (still
masked). The plain text comes out only through :meth:`Secret.reveal`, and this package calls that at
the socket and nowhere else:

* :func:`connect_pg` - the psycopg connect call (errors come back scrubbed, without psycopg's frames,
  whose locals hold the conninfo);
* :class:`BearerAuth` - the ``Authorization`` header of an httpx request, set per request;
* :func:`bearer_header` - the same for ``http.client`` (readiness probes);
* :func:`reveal_env` - a child process's or container's environment, at ``Popen``/container creation;
* the 0600 file that hands a stack's secrets to pytest-xdist workers (``stack/session.py``).

pytest's long tracebacks (``--tb=long -l``) print every frame's locals with ``repr()``; keeping secrets
as :class:`Secret` in every frame, and revealing only inside those small functions (never bound to a
local that outlives the call), keeps them out of test output, JUnit XML and summaries.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

if TYPE_CHECKING:
    import psycopg

MASK = "***"
MIN_SCRUB_LEN = 3  # shorter fragments are not replaced in free text (they would mangle it)


class Secret:
    """A string value that never shows itself; :meth:`reveal` is the only way out."""

    __slots__ = ("_parts", "_value")

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value._value
        if not isinstance(value, str):
            raise TypeError(f"{type(self).__name__} wraps a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "_parts", ())

    @classmethod
    def compose(cls, template: str, *parts: Secret | str) -> Secret:
        """``template.format(*parts)`` with the parts revealed, as a new Secret (never a plain str).

        The secret parts are remembered, so output that shows one of them alone is scrubbed too.
        """
        made = cls(template.format(*(p._value if isinstance(p, Secret) else p for p in parts)))
        object.__setattr__(made, "_parts", tuple(p for p in parts if isinstance(p, Secret)))
        return made

    def reveal(self) -> str:
        """The plain text. Call it only where it goes onto the wire, and do not keep the result."""
        return self._value

    def masked(self) -> str:
        """What every printable form shows."""
        return MASK

    def fragments(self) -> tuple[str, ...]:
        """Substrings that must not appear in output (see :func:`scrub`): the value and its parts'."""
        own = (self._value,) if self._value else ()
        return own + tuple(f for part in self._parts for f in part.fragments())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()

    def __format__(self, spec: str) -> str:
        return format(self.masked(), spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"a {type(self).__name__} is not picklable: hand secrets to another process through its "
            "environment or a 0600 file, never in a pickle"
        )


class DsnSecret(Secret):
    """A PostgreSQL DSN (URL or ``key=value`` form): printed with its password masked."""

    __slots__ = ()

    def masked(self) -> str:
        return mask_dsn(self._value)

    def password(self) -> str | None:
        return dsn_password(self._value)

    def fragments(self) -> tuple[str, ...]:
        pw = self.password()
        return (*super().fragments(), *((pw,) if pw else ()))

    def with_dbname(self, dbname: str) -> DsnSecret:
        return DsnSecret(with_dbname(self._value, dbname))


# -- DSNs --------------------------------------------------------------------------------------------

_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _is_url(dsn: str) -> bool:
    return "://" in dsn.split(None, 1)[0] if dsn.strip() else False


def dsn_password(dsn: str) -> str | None:
    """The password a DSN carries (URL userinfo, ``?password=`` or ``password=``), or None."""
    if _is_url(dsn):
        try:
            parts = urlsplit(dsn)
            if parts.password:
                return parts.password
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if key == "password" and value:
                    return value
        except ValueError:
            return None
        return None
    match = _KV_PASSWORD.search(dsn)
    if not match:
        return None
    value = match.group(2)
    return value[1:-1] if value.startswith("'") else value


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (the rest kept: it says where, not how)."""
    if not _is_url(dsn):
        return _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, sep, _pw = userinfo.partition(":")
            netloc = f"{user}{':' + MASK if sep else ''}@{hostport}"
        query = parts.query
        if "password" in query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK if k == "password" else v) for k, v in pairs], safe="*")
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return MASK  # unparseable: show nothing rather than guess


def with_dbname(dsn: str, dbname: str) -> str:
    """The URL-form DSN pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


# -- output hygiene ----------------------------------------------------------------------------------


def scrub(text: str, secrets: Iterable[Secret | None]) -> str:
    """``text`` with every fragment of every secret replaced by ``***`` (for log tails, error bodies)."""
    for secret in secrets:
        if secret is None:
            continue
        for fragment in sorted(secret.fragments(), key=len, reverse=True):
            if len(fragment) >= MIN_SCRUB_LEN:
                text = text.replace(fragment, MASK)
    return text


def secrets_in(values: Iterable[object]) -> list[Secret]:
    return [v for v in values if isinstance(v, Secret)]


# -- the sockets -------------------------------------------------------------------------------------


def reveal_env(env: Mapping[str, str | Secret] | None) -> dict[str, str] | None:
    """A child's environment in plain text: call it inside the ``Popen``/container-create call."""
    if env is None:
        return None
    return {k: v.reveal() if isinstance(v, Secret) else v for k, v in env.items()}


def connect_pg(dsn: Secret | str, **kwargs: Any) -> psycopg.Connection:
    """``psycopg.connect`` revealing the DSN only in the call.

    A failure is re-raised as the same psycopg error type with the DSN's password scrubbed from the
    message and without psycopg's own frames (their locals hold the conninfo in plain text).
    """
    import psycopg

    secret = dsn if isinstance(dsn, Secret) else DsnSecret(dsn)
    try:
        return psycopg.connect(secret.reveal(), **kwargs)
    except psycopg.Error as exc:
        error = _scrubbed_copy(exc, secret)
    raise error from None


def _scrubbed_copy(exc: BaseException, secret: Secret) -> BaseException:
    message = scrub(str(exc), [secret])
    try:
        return type(exc)(message)
    except Exception:
        import psycopg

        return psycopg.OperationalError(message)


def bearer_header(token: Secret) -> dict[str, str]:
    """``{"Authorization": "Bearer …"}`` for a call that sends it right away (e.g. ``http.client``)."""
    return {"Authorization": "Bearer " + token.reveal()}


class BearerAuth(httpx.Auth):
    """httpx auth: the Bearer header is set on each request as it is sent; the client holds a Secret.

    httpx's own reprs of headers mask ``Authorization``; the client, its default headers and every
    frame above the transport see only this object (whose repr is masked).
    """

    def __init__(self, token: Secret) -> None:
        self.token = token if isinstance(token, Secret) else Secret(token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer " + self.token.reveal()
        yield request

    def __repr__(self) -> str:
        return f"BearerAuth({self.token!r})"
