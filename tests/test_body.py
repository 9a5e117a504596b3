"""Body parsing by content type: JSON leaves and keys by path, forms, multipart, sniffing."""

from __future__ import annotations

from devsecmw.body import MAX_FIELDS, parse_body


def fields(pb: object) -> list[tuple[str, str]]:
    return [(f.location, f.value) for f in pb.fields]  # type: ignore[attr-defined]


def test_json_leaves_and_keys_by_path() -> None:
    body = b'{"user": {"name": "ann", "tags": ["a", {"k": "v"}], "age": 3, "ok": true}, "n": null}'
    pb = parse_body(body, "application/json")
    assert pb.kind == "json"
    assert fields(pb) == [
        ("body:json:user.name", "ann"),
        ("body:json:user.tags[0]", "a"),
        ("body:json:user.tags[1].k", "v"),
    ]
    keys = {(f.location, f.value) for f in pb.keys}
    assert ("body:json:user", "user") in keys and ("body:json:user.name", "name") in keys
    assert ("body:json:user.tags[1].k", "k") in keys


def test_json_sent_as_text_plain_is_still_json() -> None:
    pb = parse_body(b'{"q": "x"}', "text/plain")
    assert pb.kind == "json" and fields(pb) == [("body:json:q", "x")]


def test_vendor_json_types() -> None:
    assert parse_body(b'["a"]', "application/vnd.api+json; charset=utf-8").kind == "json"


def test_form_fields_names_and_raw() -> None:
    pb = parse_body(b"a=1&a=%27x%27&b+c=d+e&e=%FF", "application/x-www-form-urlencoded")
    assert pb.kind == "form"
    assert fields(pb) == [("body:form:a", "1"), ("body:form:a", "'x'"), ("body:form:b c", "d e"),
                          ("body:form:e", "\xff")]  # fmt: skip
    assert [f.raw for f in pb.fields][:2] == ["1", "%27x%27"]
    assert not pb.fields[3].utf8
    assert [f.value for f in pb.keys] == ["a", "a", "b c", "e"]


def test_no_content_type_urlencoded_when_it_looks_so() -> None:
    pb = parse_body(b"user=ann&role=admin", None)
    assert fields(pb) == [("body:form:user", "ann"), ("body:form:role", "admin")]
    prose = parse_body(b"Dear team, see = below\nthanks", None)
    assert prose.fields == [] and prose.kind == "text"


def test_multipart_values_and_file_names() -> None:
    body = (
        b"--xyz\r\n"
        b'Content-Disposition: form-data; name="title"\r\n\r\n'
        b"Hello\r\n"
        b"--xyz\r\n"
        b'Content-Disposition: form-data; name="doc"; filename="../../shell.php"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        b"\x00\x01binary\r\n"
        b"--xyz\r\n"
        b'Content-Disposition: form-data; name="note"; filename="n.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"plain text\r\n"
        b"--xyz--\r\n"
    )
    pb = parse_body(body, 'multipart/form-data; boundary="xyz"')
    assert pb.kind == "multipart"
    assert ("body:multipart:title", "Hello") in fields(pb)
    assert any(v == "plain text" for _, v in fields(pb))  # text parts are values
    assert not any("binary" in v for _, v in fields(pb))  # binary file contents are not
    assert "../../shell.php" in [f.value for f in pb.files]
    assert {"title", "doc", "note"} <= {f.value for f in pb.keys}


def test_bad_multipart_boundary_falls_back_to_text() -> None:
    pb = parse_body(b"--other\r\n\r\n<script>", "multipart/form-data; boundary=xyz")
    assert pb.kind == "text" and pb.error == "invalid multipart" and "<script>" in pb.text


def test_invalid_json_and_utf8_fall_back_to_text() -> None:
    pb = parse_body(b'{"a": "\xff', "application/json")
    assert pb.kind == "text" and not pb.utf8 and pb.error == "invalid json"
    assert pb.text == '{"a": "\xff'


def test_nesting_10000_levels_is_raw_text_not_a_crash() -> None:
    body = b"[" * 10_000 + b"1" + b"]" * 10_000
    pb = parse_body(body, "application/json")
    assert pb.text.startswith("[[[") and pb.size == len(body)


def test_field_count_is_bounded() -> None:
    body = "&".join(f"k{i}=v" for i in range(MAX_FIELDS * 2)).encode()
    pb = parse_body(body, "application/x-www-form-urlencoded")
    assert len(pb.fields) <= MAX_FIELDS


def test_truncated_flag_and_binary_kinds() -> None:
    assert parse_body(b'{"a":', "application/json", truncated=True).truncated
    assert parse_body(b"\x89PNG", "image/png").kind == "binary"
    assert parse_body(b"", "application/json").kind == "none"
