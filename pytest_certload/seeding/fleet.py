"""Fleet definitions: which table, how many rows, how each column is made from the row index.

A fleet is data (a TOML file in ``seeds/``, format documented in ``seeds/README.md``). Loading it
validates every expression against the safe language of :mod:`.expressions` and compiles the
whole row into one function, so :meth:`Fleet.rows` can stream millions of rows without building
them in memory.
"""

from __future__ import annotations

import json
import os
import string
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, overload

from pytest_certload.seeding.expressions import (
    FleetExpressionError,
    compile_function,
    expression_source,
    template_source,
)

DEFAULT_SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds"
SEEDS_DIR_ENV = "CERTLOAD_SEEDS_DIR"
COLUMN_KINDS = ("template", "const", "choice", "timestamp", "json", "array", "int")
MAX_ROWS = 50_000_000


class FleetDefinitionError(ValueError):
    """A fleet file is malformed; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class Requirement:
    """A row that must exist before seeding (a foreign-key target such as owners/o-alice)."""

    table: str
    id: str
    hint: str = ""


@dataclass(frozen=True)
class ColumnSpec:
    """One column: Python source of its value, built only from validated pieces.

    ``copy_source``, when set, produces the value in the form COPY wants (a PostgreSQL array
    literal instead of a list: dumping a list costs psycopg twice as much as the whole row).
    """

    name: str
    kind: str
    source: str
    copy_source: str | None = None


def array_element_escape(text: str) -> str:
    """Quote-safe text inside a double-quoted PostgreSQL array element."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


class IdRange(Sequence[str]):
    """The ids of a seeded fleet, computed on demand: 1M ids cost no memory.

    ``ids[k]`` is the id of the k-th row (0-based), so a scenario can pick
    ``ids[(vu * 1000 + iteration) % len(ids)]`` exactly as k6's agent_storm.js does.
    """

    def __init__(self, id_of_index: Callable[[int], str], first: int, count: int) -> None:
        self._id_of_index = id_of_index
        self.first = first
        self.count = count

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, k: int) -> str: ...
    @overload
    def __getitem__(self, k: slice) -> list[str]: ...
    def __getitem__(self, k: int | slice) -> str | list[str]:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(self.count))]
        if k < 0:
            k += self.count
        if not 0 <= k < self.count:
            raise IndexError(f"fleet id index {k} outside 0..{self.count - 1}")
        return str(self._id_of_index(self.first + k))

    def __repr__(self) -> str:
        if not self.count:
            return "IdRange(empty)"
        return f"IdRange({self[0]!r} .. {self[-1]!r}, {self.count} ids)"


@dataclass
class Fleet:
    """One loaded fleet definition."""

    name: str
    path: Path
    table: str
    count: int
    first: int
    id_prefix: str
    columns: list[ColumnSpec]
    description: str = ""
    requires: list[Requirement] = field(default_factory=list)
    api: str | None = None  # "certificates" | "agents" | None (no API seeding path)
    _namespace: dict[str, object] = field(default_factory=dict, repr=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def json_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "json"]

    def with_count(self, count: int) -> Fleet:
        """The same fleet with another row count (benchmarks seed 1,000,000 bulk certificates)."""
        _check_count(count, self.path)
        clone = Fleet(**{**self.__dict__, "count": count})
        return clone

    def row_function(self, now: datetime, for_copy: bool = False) -> Callable[[int], tuple]:
        """``f(i) -> tuple`` of column values, compiled once per seeding run (``now`` is fixed).

        ``for_copy`` gives arrays as PostgreSQL literals (text COPY); otherwise Python lists.
        """
        sources = [(c.copy_source or c.source) if for_copy else c.source for c in self.columns]
        body = "(" + ", ".join(sources) + ",)"
        return compile_function(body, {**self._namespace, "_now": now, "_td": timedelta})  # type: ignore[return-value]

    def rows(self, now: datetime | None = None, for_copy: bool = False) -> Iterator[tuple]:
        """Stream the fleet's rows (a generator: memory does not grow with ``count``)."""
        make = self.row_function(now or datetime.now(UTC), for_copy)
        for i in range(self.first, self.first + self.count):
            yield make(i)

    def id_function(self) -> Callable[[int], str]:
        spec = next(c for c in self.columns if c.name == "id")
        return compile_function(spec.source, self._namespace)  # type: ignore[return-value]

    def ids(self) -> IdRange:
        return IdRange(self.id_function(), self.first, self.count)


def _check_count(count: object, path: Path) -> None:
    if type(count) is not int or not 1 <= count <= MAX_ROWS:
        raise FleetDefinitionError(f"{path}: fleet.count must be an integer 1..{MAX_ROWS}, got {count!r}")


def _column(index: int, name: str, raw: Any, namespace: dict[str, object], where: str) -> ColumnSpec:
    """Turn one ``[columns]`` entry into validated Python source.

    Values that are not plain expressions live in ``namespace`` under a slot named by the column's
    position, never by its name: a column name is data and must not reach the generated source.
    """
    slot = f"_c{index}"
    try:
        if isinstance(raw, str):
            return ColumnSpec(name, "template", template_source(raw))
        if isinstance(raw, bool | int | float):
            namespace[slot] = raw
            return ColumnSpec(name, "const", slot)
        if not isinstance(raw, dict):
            raise FleetDefinitionError(
                f"{where}: expected a template string, a number or a table, got {raw!r}"
            )
        kind = raw.get("kind")
        allowed_keys = {
            "template": {"template"},
            "const": {"value"},
            "choice": {"by", "values"},
            "timestamp": {"offset_seconds"},
            "json": {"value"},
            "array": {"items"},
            "int": {"expr"},
        }
        if kind not in allowed_keys:
            raise FleetDefinitionError(
                f"{where}: kind must be one of {', '.join(COLUMN_KINDS)}, got {kind!r}"
            )
        extra = set(raw) - allowed_keys[kind] - {"kind"}
        missing = allowed_keys[kind] - set(raw)
        if extra or missing:
            raise FleetDefinitionError(
                f"{where}: kind {kind!r} takes keys {sorted(allowed_keys[kind])}"
                + (f"; unknown {sorted(extra)}" if extra else "")
                + (f"; missing {sorted(missing)}" if missing else "")
            )
        if kind == "template":
            return ColumnSpec(name, kind, template_source(_string(raw["template"], where)))
        if kind == "const":
            namespace[slot] = raw["value"]
            return ColumnSpec(name, kind, slot)
        if kind == "int":
            return ColumnSpec(name, kind, expression_source(raw["expr"]))
        if kind == "choice":
            values = raw["values"]
            if not isinstance(values, list) or not values:
                raise FleetDefinitionError(f"{where}: choice.values must be a non-empty list")
            namespace[slot] = tuple(values)
            return ColumnSpec(name, kind, f"{slot}[{expression_source(raw['by'])} % {len(values)}]")
        if kind == "timestamp":
            return ColumnSpec(name, kind, f"_now + _td(seconds={expression_source(raw['offset_seconds'])})")
        if kind == "json":
            return ColumnSpec(name, kind, _json_source(raw["value"], slot, namespace, where))
        # array
        items = raw["items"]
        if not isinstance(items, list):
            raise FleetDefinitionError(f"{where}: array.items must be a list of template strings")
        python = "[" + ", ".join(template_source(_string(t, where)) for t in items) + "]"
        quoted = [f"'\"' + {template_source(t, array_element_escape)} + '\"'" for t in items]
        literal = "'{' + " + " + ',' + ".join(quoted) + " + '}'" if quoted else "'{}'"
        return ColumnSpec(name, kind, python, literal)
    except FleetExpressionError as exc:
        raise FleetDefinitionError(f"{where}: {exc}") from None


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise FleetDefinitionError(f"{where}: expected a string, got {value!r}")
    return value


def _json_source(value: object, slot: str, namespace: dict[str, object], where: str) -> str:
    """JSON objects with string values only (certctl's tags reject other value types with 400)."""
    if not isinstance(value, dict):
        raise FleetDefinitionError(f"{where}: json.value must be a table of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise FleetDefinitionError(
                f"{where}: json.value.{key} must be a string (certctl accepts only string tag values)"
            )
    pieces = {k: template_source(v) for k, v in value.items()}
    if not any(field is not None for v in value.values() for _, field, _, _ in string.Formatter().parse(v)):
        namespace[slot] = json.dumps(value, separators=(",", ":"))  # constant: dump once
        return slot
    namespace["_json_dumps"] = json.dumps
    return "_json_dumps({" + ", ".join(f"{k!r}: {p}" for k, p in pieces.items()) + "})"


def parse_fleet(data: dict[str, Any], path: Path, name: str | None = None) -> Fleet:
    """Validate a decoded fleet file and compile its columns."""
    meta = data.get("fleet")
    columns = data.get("columns")
    if not isinstance(meta, dict):
        raise FleetDefinitionError(f"{path}: missing [fleet] table (see seeds/README.md)")
    if not isinstance(columns, dict) or not columns:
        raise FleetDefinitionError(f"{path}: missing or empty [columns] table (see seeds/README.md)")
    unknown = set(data) - {"fleet", "columns"}
    if unknown:
        raise FleetDefinitionError(f"{path}: unknown top-level tables {sorted(unknown)}")
    known_meta = {"table", "count", "first", "id_prefix", "description", "requires", "api"}
    if set(meta) - known_meta:
        raise FleetDefinitionError(f"{path}: unknown keys in [fleet]: {sorted(set(meta) - known_meta)}")
    for key in ("table", "count", "id_prefix"):
        if key not in meta:
            raise FleetDefinitionError(f"{path}: [fleet] needs {key!r}")
    _check_count(meta["count"], path)
    first = meta.get("first", 1)
    if type(first) is not int or first < 0:
        raise FleetDefinitionError(f"{path}: fleet.first must be a non-negative integer")
    id_prefix = _string(meta["id_prefix"], f"{path}: fleet.id_prefix")
    if not id_prefix:
        raise FleetDefinitionError(
            f"{path}: fleet.id_prefix must not be empty: it namespaces the seeded rows"
        )
    api = meta.get("api")
    if api not in (None, "certificates", "agents"):
        raise FleetDefinitionError(f"{path}: fleet.api must be 'certificates' or 'agents', got {api!r}")
    if "id" not in columns:
        raise FleetDefinitionError(f"{path}: [columns] must define 'id' (it carries the id prefix)")
    requires = []
    for k, req in enumerate(meta.get("requires", [])):
        if not isinstance(req, dict) or not {"table", "id"} <= set(req):
            raise FleetDefinitionError(f"{path}: fleet.requires[{k}] needs 'table' and 'id'")
        requires.append(Requirement(req["table"], req["id"], req.get("hint", "")))
    namespace: dict[str, object] = {}
    specs = [
        _column(k, col, raw, namespace, f"{path}: columns.{col}")
        for k, (col, raw) in enumerate(columns.items())
    ]
    fleet = Fleet(
        name=name or path.stem,
        path=path,
        table=_string(meta["table"], f"{path}: fleet.table"),
        count=meta["count"],
        first=first,
        id_prefix=id_prefix,
        columns=specs,
        description=meta.get("description", ""),
        requires=requires,
        api=api,
        _namespace=namespace,
    )
    ids = fleet.ids()
    for k in {0, len(ids) // 2, len(ids) - 1}:
        if not ids[k].startswith(id_prefix):
            raise FleetDefinitionError(
                f"{path}: id {ids[k]!r} (row {k}) does not start with fleet.id_prefix {id_prefix!r}; "
                "every id must carry the prefix so cleanup can find exactly these rows"
            )
    return fleet


def seeds_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where fleet files live: explicit path, else $CERTLOAD_SEEDS_DIR, else the repo's seeds/."""
    return Path(override or os.environ.get(SEEDS_DIR_ENV) or DEFAULT_SEEDS_DIR)


def available_fleets(directory: Path | None = None) -> list[str]:
    d = directory or seeds_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def load_fleet(name_or_path: str | os.PathLike[str], directory: Path | None = None) -> Fleet:
    """Load ``seeds/<name>.toml`` (or an explicit path) into a validated :class:`Fleet`."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        path = candidate
    else:
        path = (directory or seeds_dir()) / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(available_fleets(path.parent)) or "none"
        raise FleetDefinitionError(f"no fleet definition {path} (fleets in {path.parent}: {known})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FleetDefinitionError(f"{path}: not valid TOML: {exc}") from None
    return parse_fleet(data, path)
