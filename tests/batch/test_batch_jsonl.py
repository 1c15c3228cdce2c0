"""The append-only JSONL writer and its reader: whole lines only, partial tails ignored."""

from __future__ import annotations

from air3d.batch.jsonl import JsonlWriter, read_jsonl, write_jsonl_atomic


def values(path):
    return [line.value for line in read_jsonl(path)]


def test_writer_appends_whole_lines_across_reopenings(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlWriter(path) as writer:
        writer.write([{"a": 1}, {"a": 2}])
    with JsonlWriter(path) as writer:
        writer.write([{"a": 3}])
        writer.write([])
    assert path.read_text().endswith("\n")
    assert values(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_a_partial_last_line_is_ignored_and_cut_off_before_appending(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b": [1, 2')  # a write cut short by a crash
    assert values(path) == [{"a": 1}]
    with JsonlWriter(path) as writer:
        writer.write([{"a": 3}])
    assert path.read_text() == '{"a": 1}\n{"a": 3}\n'


def test_a_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}')
    assert values(path) == [{"a": 1}, {"a": 2}]
    with JsonlWriter(path) as writer:
        writer.write([{"a": 3}])
    assert values(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_invalid_lines_inside_the_file_are_reported_with_their_number(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\nnot json\n\n[1, 2]\n')
    lines = list(read_jsonl(path))
    assert [(line.number, line.value) for line in lines] == [(1, {"a": 1}), (2, None), (4, [1, 2])]
    assert lines[1].error.startswith("invalid JSON")


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    write_jsonl_atomic(path, [{"source": "b"}, {"source": "a"}])
    assert values(path) == [{"source": "b"}, {"source": "a"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
