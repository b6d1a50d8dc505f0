"""The append-only store: durable rows, tolerant reader, tail repair, single writer."""

import json

import pytest

from psilon.bench.store import ResultStore, StoreLockedError, atomic_write_text


def _lines(path):
    return path.read_bytes().split(b"\n")


def test_append_and_read_back(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultStore(path) as store:
        store.append({"key": "a", "status": "ok", "x": 1.5})
        store.append({"key": "b", "status": "error"})
    assert [r["key"] for r in ResultStore(path).rows()] == ["a", "b"]
    assert ResultStore(path).finished_keys() == {"a"}
    assert path.read_bytes().endswith(b"\n") and all(json.loads(l) for l in _lines(path)[:-1])


def test_reader_ignores_trailing_partial_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"key":"a","status":"ok"}\n{"key":"b","sta')
    assert [r["key"] for r in ResultStore(path).rows()] == ["a"]


def test_writer_cuts_a_partial_tail_before_appending(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"key":"a","status":"ok"}\n{"key":"b","sta')
    with ResultStore(path) as store:
        store.append({"key": "c", "status": "ok"})
    assert path.read_bytes() == b'{"key":"a","status":"ok"}\n{"key":"c","status":"ok"}\n'


def test_duplicate_keys_keep_the_ok_row_else_the_latest(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [
        {"key": "a", "status": "error", "n": 1},
        {"key": "a", "status": "ok", "n": 2},
        {"key": "a", "status": "ok", "n": 3},
        {"key": "b", "status": "skipped", "n": 4},
        {"key": "b", "status": "error", "n": 5},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert {r["key"]: r["n"] for r in ResultStore(path).rows()} == {"a": 2, "b": 5}


def test_second_writer_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    with ResultStore(path):
        with pytest.raises(StoreLockedError, match="another process"):
            ResultStore(path).open()
    with ResultStore(path) as store:  # released
        store.append({"key": "a", "status": "ok"})


def test_append_needs_an_open_store_and_a_key(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    with pytest.raises(RuntimeError, match="open the store"):
        store.append({"key": "a"})
    with store, pytest.raises(ValueError, match="needs a 'key'"):
        store.append({"status": "ok"})


def test_atomic_write_replaces_without_leftovers(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["f.txt"]
