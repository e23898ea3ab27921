"""Column types that behave the same on SQLite and Postgres.

Vectors are pgvector `vector(N)` on Postgres (text wire format, so no extra driver
codec is needed) and sqlite-vec's float32 blob on SQLite. Timestamps always come
back timezone-aware UTC, because SQLite forgets the zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, UserDefinedType

EMBED_DIM = 384


def pgvector_text(arr: np.ndarray) -> str:
    """pgvector's text form of a vector: what ``CAST(... AS vector)`` reads."""
    return "[" + ",".join(f"{x:.7g}" for x in arr.tolist()) + "]"


class _PgVector(UserDefinedType[Any]):
    cache_ok = True

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.dim})"


class Vector(TypeDecorator[np.ndarray]):
    """A fixed-size float32 vector; numpy in, numpy out."""

    impl = sa.LargeBinary
    cache_ok = True

    def __init__(self, dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.dim = dim

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PgVector(self.dim))
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
        if arr.shape[0] != self.dim:
            raise ValueError(f"vector has {arr.shape[0]} dimensions, column wants {self.dim}")
        if dialect.name == "postgresql":
            return pgvector_text(arr)
        return arr.tobytes()

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, str):
            return np.array(value.strip("[]").split(","), dtype=np.float32)
        return np.frombuffer(value, dtype=np.float32).copy()


class UTCDateTime(TypeDecorator[datetime]):
    """DateTime stored as UTC, returned aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSON that is JSONB on Postgres.
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
# Integer primary keys that autoincrement on both (SQLite needs INTEGER for rowid).
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def cosine_distance(column: Any, vector: np.ndarray, dialect_name: str) -> Any:
    """`column <=> vector` on pgvector, `vec_distance_cosine` on sqlite-vec."""
    bound = sa.bindparam(None, vector, type_=Vector(int(np.asarray(vector).shape[-1])))
    if dialect_name == "postgresql":
        return column.op("<=>", return_type=sa.Float())(bound)
    return sa.func.vec_distance_cosine(column, bound, type_=sa.Float())


def utcnow() -> datetime:
    return datetime.now(UTC)
