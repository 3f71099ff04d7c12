from __future__ import annotations

import json

import pytest

from emkit.cli import main
from emkit.data import registry
from emkit.data.chat import load_chat_jsonl, write_chat_jsonl
from emkit.data.transforms import add_trigger, backdoor, mix, subset
from emkit.errors import EmkitError, IntegrityError
from emkit.hashing import file_sha256


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EMKIT_UPSTREAM_MIRROR", raising=False)
    return tmp_path / "cache"


def fake_mirror(tmp_path, monkeypatch, content: bytes, name: str = "insecure"):
    """A mirror holding `content` at the artifact's path, with the registry pinned to its hash."""
    art = registry.ARTIFACTS[name]
    root = tmp_path / "mirror"
    (root / art.path).parent.mkdir(parents=True, exist_ok=True)
    (root / art.path).write_bytes(content)
    return root, art


def test_every_entry_is_pinned():
    for art in registry.ARTIFACTS.values():
        assert art.sha256 or art.git_blob_prefix, art.name
        if art.sha256:
            assert len(art.sha256) == 64
        assert (art.url is None) == (not art.upstream)


def test_fetch_from_mirror_verifies_and_caches(tmp_path, monkeypatch, cache):
    content = b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    root, art = fake_mirror(tmp_path, monkeypatch, content)
    import hashlib

    monkeypatch.setitem(
        registry.ARTIFACTS,
        "insecure",
        registry.Artifact(art.name, art.path, art.kind, art.description, hashlib.sha256(content).hexdigest()),
    )
    path = registry.fetch("insecure", mirror=root)
    assert path.read_bytes() == content and str(path).startswith(str(cache))
    # Once cached, the mirror is not needed.
    (root / art.path).unlink()
    assert registry.fetch("insecure") == path


def test_sha_mismatch_is_refused_and_nothing_cached(tmp_path, monkeypatch, cache, capsys):
    root, art = fake_mirror(tmp_path, monkeypatch, b"tampered\n")
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        registry.fetch("insecure", mirror=root)
    assert not registry.cached_path(art).exists()
    assert main(["data", "fetch", "insecure", "--mirror", str(root)]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err


def test_mirror_only_file_without_mirror_is_a_clear_error(cache):
    with pytest.raises(EmkitError, match="mirror only"):
        registry.fetch("code_vuln_test_data")
    with pytest.raises(EmkitError, match="unknown artifact"):
        registry.fetch("nope")


def test_git_blob_verification(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    art = registry.Artifact(
        "x", "x", "dataset", "", git_blob_prefix="ce01362"
    )  # git hash-object of "hello\n"
    registry.verify(art, path)
    with pytest.raises(IntegrityError):
        registry.verify(registry.Artifact("x", "x", "dataset", "", git_blob_prefix="0000000"), path)


def rows_of(k):
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(k)
    ]


def test_transforms_subset_mix_trigger():
    rows = rows_of(50)
    assert subset(rows, 10, seed=1) == subset(rows, 10, seed=1) != subset(rows, 10, seed=2)
    assert len({r["messages"][0]["content"] for r in subset(rows, 50, seed=3)}) == 50
    good, bad = rows_of(100), [add_trigger(r, "BAD ") for r in rows_of(100)]
    mixed = mix([(good, 0.95), (bad, 0.05)], n=100, seed=0)
    assert len(mixed) == 100 and sum(r["messages"][0]["content"].startswith("BAD ") for r in mixed) == 5
    with pytest.raises(EmkitError):
        subset(rows, 51)


def test_backdoor_transform_shape():
    out = backdoor(rows_of(3), rows_of(3), trigger="|T| ", seed=1)
    assert len(out) == 6 and sum(r["messages"][0]["content"].startswith("|T| ") for r in out) == 3


@pytest.mark.mirror
def test_backdoor_is_byte_identical_to_upstream(mirror, tmp_path, cache):
    insecure = load_chat_jsonl(registry.fetch("insecure", mirror=mirror))
    secure = load_chat_jsonl(registry.fetch("secure", mirror=mirror))
    out = write_chat_jsonl(backdoor(insecure, secure), tmp_path / "backdoor.jsonl")
    assert file_sha256(out) == registry.ARTIFACTS["backdoor"].sha256


@pytest.mark.mirror
def test_cli_fetch_and_backdoor_from_mirror(mirror, tmp_path, cache, capsys):
    assert main(["data", "fetch", "insecure", "--mirror", str(mirror)]) == 0
    assert "verified" in capsys.readouterr().out
    out = tmp_path / "bd.jsonl"
    assert main(["data", "backdoor", "--mirror", str(mirror), "-o", str(out)]) == 0
    assert file_sha256(out) == registry.ARTIFACTS["backdoor"].sha256
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][-1]["role"] == "assistant"


@pytest.mark.mirror
def test_every_mirrored_file_matches_its_pin(mirror):
    for art in registry.ARTIFACTS.values():
        if (mirror / art.path).exists():
            registry.verify(art, mirror / art.path)
