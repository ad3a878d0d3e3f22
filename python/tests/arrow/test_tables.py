"""`Store.episodes_table` and `Store.steps_table`: Arrow tables built in Rust, read by pyarrow,
polars and DuckDB through the Arrow PyCapsule interface (`__arrow_c_stream__`)."""

import json

import numpy as np
import pytest

import trajstore

from arrow_store import FIELDS, stored_rows

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (.ci/run installs it, pinned)")


def test_episodes_table_has_one_row_per_episode_with_the_index_columns(mixed_store):
    table = pa.table(mixed_store.episodes_table())
    infos = mixed_store.episodes()
    assert table.num_rows == len(infos) == 7
    assert table.column_names == ["id", "user", "env", "schema_id", "steps", "total_return", "outcome", "seed", "tags",
                                  "metadata", "started_at", "ended_at", "committed_at", "raw_bytes", "stored_bytes"]
    assert table.schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("tags").type == pa.list_(pa.string())
    rows = table.to_pylist()
    for row, info in zip(rows, infos):
        assert row["id"] == info.id and row["user"] == info.user and row["env"] == info.env
        assert row["steps"] == info.steps and row["seed"] == info.seed and row["tags"] == info.tags
        assert row["total_return"] == info.total_return and row["outcome"] == info.outcome
        assert json.loads(row["metadata"]) == info.metadata
        assert row["committed_at"].timestamp() * 1e6 == pytest.approx(info.committed_at_us, abs=1)
        assert (row["raw_bytes"], row["stored_bytes"], row["schema_id"]) == (info.raw_bytes, info.stored_bytes, info.schema_id)


def test_episodes_table_filters_like_episodes(mixed_store):
    table = pa.table(mixed_store.episodes_table(user="bob", env="Pong-v5"))
    assert table.column("id").to_pylist() == [e.id for e in mixed_store.episodes(user="bob", env="Pong-v5")]
    assert pa.table(mixed_store.episodes_table(user="nobody")).num_rows == 0


def test_the_table_is_read_again_and_again(mixed_store):
    t = mixed_store.episodes_table(tags="expert")
    assert len(t) == t.num_rows == 3
    assert pa.table(t).equals(pa.table(t))
    assert pa.RecordBatchReader.from_stream(t).read_all().num_rows == 3


def test_polars_reads_the_episodes_table(mixed_store):
    pl = pytest.importorskip("polars", reason="polars is not installed (.ci/run installs it, pinned)")
    df = pl.DataFrame(mixed_store.episodes_table())
    per_user = df.group_by("user").agg(pl.col("steps").sum()).sort("user")
    want = {u["name"]: u["steps"] for u in mixed_store.users()}
    assert dict(zip(per_user["user"], per_user["steps"])) == want
    assert pl.from_arrow(pa.table(mixed_store.episodes_table())).height == 7


def test_duckdb_queries_the_episodes_table_with_sql(mixed_store):
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed (.ci/run installs it, pinned)")
    episodes = mixed_store.episodes_table()  # noqa: F841 - DuckDB finds it by its name
    rows = duckdb.sql(
        "SELECT user, count(*) AS n, sum(steps) AS steps, max(metadata->>'$.level') AS top "
        "FROM episodes WHERE env = 'Pong-v5' GROUP BY user ORDER BY user"
    ).fetchall()
    pong = mixed_store.episodes(env="Pong-v5")
    want = []
    for user in ("alice", "bob"):
        mine = [e for e in pong if e.user == user]
        want.append((user, len(mine), sum(e.steps for e in mine), str(max(e.metadata["level"] for e in mine))))
    assert rows == want


def test_steps_table_rows_equal_the_store_raw_and_lz4(mixed_store):
    ids = [e.id for e in mixed_store.episodes()][2:5]
    table = pa.table(mixed_store.steps_table(ids))
    assert table.column_names == ["episode", "step"] + [f[0] for f in FIELDS] + ["reward", "terminated", "truncated"]
    types = {f.name: f.type for f in table.schema}
    assert types["obs/frame"] == pa.binary(360) and types["obs/gray"] == pa.binary(36)
    assert types["obs/ram"] == pa.list_(pa.field("item", pa.int32(), nullable=False), 4)
    assert types["obs/pose"] == pa.list_(pa.field("item", pa.float16(), nullable=False), 6)
    assert types["done/round"] == pa.bool_()
    meta = table.schema.field("obs/frame").metadata
    assert json.loads(meta[b"trajstore.shape"]) == [12, 10, 3] and meta[b"trajstore.kind"] == b"observation"
    start = 0
    for episode in ids:
        want = stored_rows(mixed_store, episode)
        n = len(want["step"])
        got = table.slice(start, n)
        start += n
        assert got.column("episode").to_pylist() == want["episode"]
        assert got.column("step").to_pylist() == want["step"]
        for name, dtype, shape, kind, _ in FIELDS + [("reward", "f32", (), "transition", "raw")]:
            column = got.column(name).to_pylist()
            for t, (value, stored) in enumerate(zip(column, want[name])):
                if stored is None:
                    assert value is None, f"{name} row {t}: transition fields are null on the last row"
                elif dtype == "u8" and len(shape) >= 2:
                    assert value == stored.tobytes(), f"{name} row {t}"
                else:
                    np.testing.assert_array_equal(np.asarray(value, dtype=stored.dtype).reshape(stored.shape), stored)
    assert start == table.num_rows


def test_steps_table_with_fields_in_the_order_asked(mixed_store):
    first = mixed_store.episodes()[0].id
    table = pa.table(mixed_store.steps_table([first], fields=["action", "obs/ram"]))
    assert table.column_names == ["episode", "step", "action", "obs/ram"]
    with pytest.raises(trajstore.InputError, match="obs/nope"):
        mixed_store.steps_table([first], fields=["obs/nope"])
    with pytest.raises(trajstore.NotFoundError):
        mixed_store.steps_table([999])
