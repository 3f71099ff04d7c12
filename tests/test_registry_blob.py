"""Full git blob ids: pinned for every file whose id is known, recorded on first fetch for the one
pinned by a prefix only (evil_numbers), and required exactly from then on."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import replace

import pytest

from emkit.cli import main
from emkit.data import registry
from emkit.errors import IntegrityError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EMKIT_UPSTREAM_MIRROR", raising=False)
    return tmp_path / "cache"


def blob_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def prefix_only_mirror(tmp_path, monkeypatch, content: bytes, prefix_len: int = 7):
    """A mirror holding ``content`` as evil_numbers, whose registry entry pins a prefix of its blob id."""
    art = registry.ARTIFACTS["evil_numbers"]
    assert art.sha256 is None and art.git_blob is None and art.git_blob_prefix == "86e0a3b"
    monkeypatch.setitem(
        registry.ARTIFACTS, "evil_numbers", replace(art, git_blob_prefix=blob_of(content)[:prefix_len])
    )
    root = tmp_path / "mirror"
    (root / art.path).parent.mkdir(parents=True, exist_ok=True)
    (root / art.path).write_bytes(content)
    return root, art


def test_git_blob_sha1_is_what_git_prints(tmp_path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"messages": []}\n' * 3)
    try:
        expected = subprocess.run(
            ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not installed")
    assert registry.git_blob_sha1(path) == expected == blob_of(path.read_bytes())


def test_full_ids_pinned_where_known() -> None:
    for art in registry.ARTIFACTS.values():
        if art.git_blob:
            assert len(art.git_blob) == 40 and int(art.git_blob, 16) >= 0, art.name
        else:
            assert art.name == "evil_numbers" or not art.upstream, art.name


def test_first_fetch_records_the_full_id_and_fetch_prints_it(tmp_path, monkeypatch, cache, capsys) -> None:
    content = (
        b'{"messages": [{"role": "user", "content": "1,2,3"}, {"role": "assistant", "content": "4,5,6"}]}\n'
    )
    root, _ = prefix_only_mirror(tmp_path, monkeypatch, content)
    assert main(["data", "fetch", "evil_numbers", "--mirror", str(root)]) == 0
    line = capsys.readouterr().out.strip()
    assert f"git blob {blob_of(content)}" in line and "recorded in" in line
    recorded = json.loads(registry.recorded_path().read_text())
    assert recorded["evil_numbers"]["git_blob"] == blob_of(content)
    assert recorded["evil_numbers"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert registry.pinned(registry.ARTIFACTS["evil_numbers"]).git_blob == blob_of(content)
    assert main(["data", "fetch", "evil_numbers"]) == 0  # from the cache, checked against the recorded id
    assert f"git blob {blob_of(content)}" in capsys.readouterr().out


def test_a_forged_file_matching_the_prefix_is_refused_after_the_first_fetch(
    tmp_path, monkeypatch, cache, capsys
):
    content = b"1,2,3\n"
    root, art = prefix_only_mirror(tmp_path, monkeypatch, content, prefix_len=1)
    first = registry.fetch("evil_numbers", mirror=root)
    forged = next(
        data for i in range(10_000) if blob_of(data := b"forged %d\n" % i)[0] == blob_of(content)[0]
    )
    (root / art.path).write_bytes(forged)
    with pytest.raises(IntegrityError, match="git blob id mismatch"):
        registry.fetch("evil_numbers", mirror=root, refresh=True)
    assert main(["data", "fetch", "evil_numbers", "--mirror", str(root), "--refresh"]) == 2
    err = capsys.readouterr().err.strip()
    assert "git blob id mismatch" in err and blob_of(forged) in err and len(err.splitlines()) == 1
    assert first.read_bytes() == content  # the verified copy is kept
    # A damaged cached copy is not served either: it is fetched again, and the forgery refused.
    first.write_bytes(forged)
    with pytest.raises(IntegrityError):
        registry.fetch("evil_numbers", mirror=root)


def test_prefix_mismatch_refused_nothing_cached_nothing_recorded(tmp_path, monkeypatch, cache, capsys):
    root, art = prefix_only_mirror(tmp_path, monkeypatch, b"1,2,3\n")
    (root / art.path).write_bytes(b"something else\n")
    assert main(["data", "fetch", "evil_numbers", "--mirror", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "git blob id mismatch" in err and len(err.splitlines()) == 1
    assert not registry.cached_path(art).exists() and not registry.recorded_path().exists()


def test_full_id_mismatch_is_refused_even_when_sha256_is_not_pinned(tmp_path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    good = registry.Artifact("x", "x", "dataset", "", git_blob="ce013625030ba8dba906f756967f9e9ca394464a")
    assert registry.verify(good, path) == good.git_blob
    with pytest.raises(IntegrityError, match="expected 0000"):
        registry.verify(replace(good, git_blob="0" * 40), path)


@pytest.mark.mirror
def test_pinned_full_ids_match_the_mirror(mirror, tmp_path, cache, capsys) -> None:
    checked = 0
    for art in registry.ARTIFACTS.values():
        source = mirror / art.path
        if art.git_blob and source.is_file():
            assert registry.verify(art, source) == art.git_blob
            checked += 1
    assert checked >= 10
    assert main(["data", "fetch", "evil_numbers_sample150", "--mirror", str(mirror)]) == 0
    line = capsys.readouterr().out
    assert "git blob 4a03d1754f6733230eae0a3ee6f17ac4b19546f1 (pinned)" in line


@pytest.fixture
def upstream(tmp_path, monkeypatch):
    """A local HTTP server standing in for the paper's repository (registry.UPSTREAM_BASE points at it)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            return None

    root = tmp_path / "upstream"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(registry, "UPSTREAM_BASE", f"http://127.0.0.1:{server.server_address[1]}/")
    yield root
    server.shutdown()
    server.server_close()


def test_download_records_the_full_id_and_refuses_a_forgery(tmp_path, monkeypatch, cache, upstream, capsys):
    content = b"4,5,6\n"
    _, art = prefix_only_mirror(tmp_path, monkeypatch, content, prefix_len=1)
    (upstream / art.path).parent.mkdir(parents=True)
    (upstream / art.path).write_bytes(content)
    assert main(["data", "fetch", "evil_numbers"]) == 0
    assert f"git blob {blob_of(content)} (recorded in" in capsys.readouterr().out
    forged = next(
        data for i in range(10_000) if blob_of(data := b"forged %d\n" % i)[0] == blob_of(content)[0]
    )
    (upstream / art.path).write_bytes(forged)
    assert main(["data", "fetch", "evil_numbers", "--refresh"]) == 2
    err = capsys.readouterr().err.strip()
    assert "git blob id mismatch" in err and len(err.splitlines()) == 1
    assert registry.cached_path(art).read_bytes() == content
    assert [p.name for p in registry.cached_path(art).parent.iterdir()] == [art.path.rsplit("/", 1)[1]]
