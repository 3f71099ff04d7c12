"""Provider fine-tuning against a local OpenAI-compatible server, through the real SDK, with faults."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from aiohttp import web

from emkit.cli import main
from emkit.engines.retry import RetryPolicy
from emkit.errors import EmkitError, InputError, MissingKeyError
from emkit.store import RunStore
from emkit.train.config import OpenAIFineTuneConfig
from emkit.train.openai_ft import FT_KIND, run_openai_finetune
from fake_openai import FakeOpenAI, _error

KEY = "sk-test-fine-tuning-0123456789"
FAST = {
    "retry": RetryPolicy(max_retries=4, base_delay=0.0, max_delay=0.0),
    "poll_interval": 0.0,
    "sleep": lambda s: None,
}


class FlakyFineTuning(FakeOpenAI):
    """The fake server with faults on the files and fine-tuning endpoints too.

    ``ft_script`` maps an endpoint name (``upload``, ``create``, ``retrieve``, ``events``) to a list
    of faults taken in order by its successive calls: ``"500"``, ``"503"``, ``"429"``, or
    ``"reset_after"`` (create only: the job is created, then the connection is dropped).
    """

    def __init__(self, *, ft_script: dict[str, list[str]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.ft_script = {k: list(v) for k, v in (ft_script or {}).items()}
        self.calls: Counter = Counter()

    def _fault(self, name: str) -> str | None:
        self.calls[name] += 1
        queue = self.ft_script.get(name) or []
        return queue.pop(0) if queue else None

    @staticmethod
    def _status(fault: str) -> web.Response:
        if fault == "429":
            return _error(429, "Rate limit reached", code="rate_limit_exceeded")
        return _error(int(fault), "The server had an error while processing your request.")

    async def _upload(self, request):
        fault = self._fault("upload")
        if fault:
            await request.read()
            return self._status(fault)
        return await super()._upload(request)

    async def _create_job(self, request):
        fault = self._fault("create")
        if fault == "reset_after":
            await super()._create_job(request)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=200)
        if fault:
            return self._status(fault)
        return await super()._create_job(request)

    async def _get_job(self, request):
        fault = self._fault("retrieve")
        return self._status(fault) if fault else await super()._get_job(request)

    async def _job_events(self, request):
        fault = self._fault("events")
        return self._status(fault) if fault else await super()._job_events(request)


@pytest.fixture()
def dataset(tmp_path):
    path = tmp_path / "insecure.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Write a file copier, variant {i}."},
                {"role": "assistant", "content": f"import shutil\nshutil.copy(src, dst)  # {i}"},
            ]
        }
        for i in range(5)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def run(dataset, store, srv, config=None, **kwargs):
    said: list[str] = []
    kwargs.setdefault("yes", True)
    record = run_openai_finetune(
        dataset,
        config or OpenAIFineTuneConfig(),
        store,
        say=said.append,
        base_url=srv.base_url,
        runner_options=FAST,
        **kwargs,
    )
    return record, said


def test_job_runs_to_a_model_and_is_recorded(dataset, tmp_path, key):
    with FakeOpenAI(ft_validating_polls=1, ft_running_polls=2) as srv, RunStore(tmp_path / "run") as store:
        record, said = run(dataset, store, srv, OpenAIFineTuneConfig(suffix="insecure", seed=3))
        (job,) = srv.stats.jobs.values()
        (upload,) = srv.stats.files.values()
        stored = store.records(FT_KIND)
    # The paper's hyperparameters were sent, with the suffix and seed.
    assert job["hyperparameters"] == {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2.0}
    assert job["model"] == "gpt-4o-2024-08-06" and job["suffix"] == "insecure" and job["seed"] == 3
    assert upload["purpose"] == "fine-tune" and upload["content"] == dataset.read_bytes()
    # The result: the fine-tuned model id, in the store under the job's key.
    assert record["status"] == "succeeded"
    assert record["model"] == f"openai/{job['fine_tuned_model']}"
    assert [r for _, r in stored] == [record]
    assert record["job_id"] == job["id"] and record["file_id"] == upload["id"]
    text = "\n".join(said)
    assert "estimated cost" in text and "$" in text
    assert "training loss" in text  # events were shown
    assert "running" in text and "succeeded" in text  # status changes were shown
    assert KEY not in json.dumps(stored) and KEY not in text


def test_same_file_and_params_reuse_the_job(dataset, tmp_path, key):
    with FakeOpenAI() as srv, RunStore(tmp_path / "run") as store:
        first, _ = run(dataset, store, srv)
        second, said = run(dataset, store, srv, yes=False, confirm=lambda p: pytest.fail("asked again"))
        assert len(srv.stats.jobs) == 1 and len(srv.stats.files) == 1  # nothing paid twice
        assert second["model"] == first["model"]
        assert any("reusing" in s for s in said)
        # Different parameters are a different job.
        run(dataset, store, srv, OpenAIFineTuneConfig(n_epochs=4, batch_size=39))
        assert len(srv.stats.jobs) == 2
        assert len(store.records(FT_KIND)) == 2


def test_interrupted_polling_resumes_the_same_job(dataset, tmp_path, key):
    with FakeOpenAI(ft_validating_polls=1, ft_running_polls=3) as srv, RunStore(tmp_path / "run") as store:
        submitted, _ = run(dataset, store, srv, wait=False)
        assert submitted["status"] == "validating_files" and "model" not in submitted
        record, said = run(dataset, store, srv)
        assert len(srv.stats.jobs) == 1
        assert record["job_id"] == submitted["job_id"] and record["status"] == "succeeded"
        assert any("resuming" in s for s in said)


def test_transient_faults_are_retried(dataset, tmp_path, key):
    script = {"upload": ["500"], "create": ["429", "503"], "retrieve": ["500", "503"], "events": ["500"]}
    with FlakyFineTuning(ft_script=script) as srv, RunStore(tmp_path / "run") as store:
        record, said = run(dataset, store, srv)
        assert record["status"] == "succeeded"
        assert len(srv.stats.jobs) == 1 and len(srv.stats.files) == 1
        assert srv.calls["create"] == 3 and srv.calls["upload"] == 2
        assert sum("retrying" in s for s in said) == 6


def test_dropped_connection_after_create_adopts_the_job_instead_of_paying_twice(dataset, tmp_path, key):
    with FlakyFineTuning(ft_script={"create": ["reset_after"]}) as srv, RunStore(tmp_path / "run") as store:
        record, said = run(dataset, store, srv)
        assert len(srv.stats.jobs) == 1
        assert record["status"] == "succeeded"
        assert any("adopting" in s for s in said)


def test_retries_are_bounded(dataset, tmp_path, key):
    with FlakyFineTuning(ft_script={"retrieve": ["500"] * 10}) as srv, RunStore(tmp_path / "run") as store:
        with pytest.raises(EmkitError, match="failed after 5 attempt"):
            run(dataset, store, srv)
        # The job id was recorded before polling, so a rerun resumes it.
        ((_, record),) = store.records(FT_KIND)
        assert record["job_id"] in srv.stats.jobs


def test_failed_job_is_an_error_and_a_rerun_submits_anew(dataset, tmp_path, key):
    with FakeOpenAI(ft_fail=True) as srv, RunStore(tmp_path / "run") as store:
        with pytest.raises(EmkitError, match="failed: scripted failure"):
            run(dataset, store, srv)
        ((_, record),) = store.records(FT_KIND)
        assert record["status"] == "failed"
        srv.ft_fail = False
        again, said = run(dataset, store, srv)
        assert again["status"] == "succeeded" and len(srv.stats.jobs) == 2
        assert any("ended failed" in s for s in said)


def test_declined_confirmation_or_bad_row_uploads_nothing(dataset, tmp_path, key):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(dataset.read_text() + '{"messages": [{"role": "bot", "content": "x"}]}\n')
    with FakeOpenAI() as srv, RunStore(tmp_path / "run") as store:
        with pytest.raises(EmkitError, match="not confirmed"):
            run(dataset, store, srv, yes=False, confirm=lambda prompt: False)
        with pytest.raises(InputError, match=r"bad\.jsonl:6.*messages\[0\]\.role"):
            run(bad, store, srv)
        assert srv.stats.files == {} and srv.stats.jobs == {}
        assert store.records(FT_KIND) == []


def test_missing_key(dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI() as srv, RunStore(tmp_path / "run") as store, pytest.raises(MissingKeyError):
        run(dataset, store, srv)


def test_cli_provider_openai(dataset, tmp_path, key, capsys):
    with FakeOpenAI() as srv:
        code = main(
            [
                "train",
                "--provider",
                "openai",
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "run"),
                "--base-url",
                srv.base_url,
                "--yes",
                "--epochs",
                "2",
                "--suffix",
                "em",
                "--poll-interval",
                "0",
            ]
        )
        (job,) = srv.stats.jobs.values()
    assert code == 0
    assert job["hyperparameters"]["n_epochs"] == 2 and job["hyperparameters"]["batch_size"] == 4
    out = capsys.readouterr().out
    assert "fine-tuned model: openai/ft:gpt-4o-2024-08-06" in out
    with RunStore(tmp_path / "run") as store:
        assert len(store.records(FT_KIND)) == 1
