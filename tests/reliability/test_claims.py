"""Two processes judging one store pay once per item, leases of dead processes are taken over, and
every printed cost is what THIS process paid.

The two-process test runs two real ``emkit judge`` processes at once against the fake server and
counts the server's requests: exactly one per planned score (before claims: 32 for 16, both
processes asked for everything). The claim tests drive :meth:`RunStore.claim` directly with owners
that are alive, dead (a pid that does not exist) or expired, as a killed judge leaves them.
"""

from __future__ import annotations

import re
import time

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import (
    FAKE_KEY,
    assert_exactly_once,
    child_env,
    cli,
    finish,
    make_run_dir,
    planned_judgements,
    seeded_responder,
    start_emkit,
    write_questions,
)

pytestmark = pytest.mark.reliability
COST = re.compile(r"\$(\d+\.\d+)")


def _costs(log: str) -> tuple[float, float]:
    """(the sum of the table's 'est. cost' cells, the 'estimated cost:' line) of one judge's output."""
    line = next(x for x in log.splitlines() if x.startswith("estimated cost:"))
    total = float(COST.search(line).group(1))
    cells = [float(m) for row in log.splitlines() if row.startswith("│ openai/") for m in COST.findall(row)]
    return sum(cells), total


def _sample(tmp_path, capsys, n: int):
    questions = write_questions(tmp_path)
    run = tmp_path / "run"
    with FakeOpenAI(responder=seeded_responder) as srv:
        code, _, err = cli(
            ["sample", "--model", "openai/fake-model", "-q", questions, "--n", str(n), "--max-new-tokens", "16",
             "--out", run, "--base-url", srv.base_url],
            capsys,
        )  # fmt: skip
        assert code == 0, err
    return run


def test_two_judge_processes_pay_once_per_score_and_each_prints_what_it_paid(
    tmp_path, capsys, api_key
) -> None:
    from emkit.judge.cost import estimate_cost, load_prices
    from emkit.store import RunStore

    run = _sample(tmp_path, capsys, n=30)
    plan = planned_judgements(run)
    assert len(plan) == 120
    env = child_env(OPENAI_API_KEY=FAKE_KEY, COLUMNS="250")
    with FakeOpenAI(latency=0.3, responder=seeded_responder) as srv:
        args = ["judge", run, "--base-url", srv.base_url, "--concurrency", "4"]
        procs = [start_emkit(*args, env=env, log=tmp_path / f"judge{i}.log") for i in range(2)]
        codes = [finish(p, timeout=600) for p in procs]
        requests = srv.stats.requests
        prompts = [b["messages"][-1]["content"] for b in srv.stats.bodies]
    logs = [(tmp_path / f"judge{i}.log").read_text(encoding="utf-8", errors="replace") for i in range(2)]
    assert codes == [0, 0], "\n----\n".join(log[-3000:] for log in logs)
    added = [int(re.search(r"judged (\d+) \(already stored", log).group(1)) for log in logs]
    assert assert_exactly_once(run, "scores", plan.values()) == 120
    assert requests == 120 and len(set(prompts)) == 120, f"{requests} requests for 120 scores"
    assert sum(added) == 120 and min(added) > 0, f"the processes did not share the work: {added}"
    with RunStore(run, read_only=True) as store:
        by_process = store.records("judge_run")
        usage_total: dict[str, int] = {}
        for row in store.scores():
            for k, v in row["usage"].items():
                usage_total[k] = usage_total.get(k, 0) + v
    paid = estimate_cost("openai/gpt-4o-2024-08-06", usage_total, load_prices()[0])
    printed = [_costs(log) for log in logs]
    for table, total in printed:
        assert total > 0 and abs(table - total) < 1e-4, printed
    assert abs(sum(total for _, total in printed) - paid) < 2e-4, (printed, paid)
    assert sorted(round(r["cost_usd"], 4) for _, r in by_process) == sorted(round(t, 4) for _, t in printed)


def test_a_judge_whose_results_another_writer_stored_first_still_prints_what_it_paid(
    tmp_path, capsys, api_key
):
    """Deterministic stand-in for a race: before each reply, the server stores that score itself."""
    from emkit.store import RunStore

    run = _sample(tmp_path, capsys, n=2)
    plan = planned_judgements(run)

    def other_writer_first(body: dict) -> dict:
        reply = seeded_responder(body)
        key = plan[body["messages"][-1]["content"]]
        with RunStore(run) as other:
            other.add_scores([{"key": key, "answer_key": "other", "metric": "m", "judge": "j", "method": "x",
                               "prompt_hash": "p", "score": 1.0}])  # fmt: skip
        return reply

    with FakeOpenAI(responder=other_writer_first) as srv:
        code, out, err = cli(["judge", run, "--base-url", srv.base_url, "--concurrency", "1"], capsys)
        assert code == 0, err
        assert srv.stats.requests == len(plan) == 8
    table, total = _costs(out)
    assert "judged 0 (already stored: 0)" in out, out
    assert total > 0 and abs(table - total) < 1e-4, out


def test_claims_skip_live_owners_and_take_over_dead_or_expired_ones(tmp_path) -> None:
    import os
    import socket

    from emkit.store import RunStore, default_owner

    host = socket.gethostname()
    run = make_run_dir(tmp_path / "run")
    keys = [f"k{i}" for i in range(8)]
    now = time.time()
    with RunStore(run) as store:
        with store.transaction() as conn:
            conn.executemany(
                "INSERT INTO claims(key, owner, expires) VALUES (?, ?, ?)",
                [
                    ("k0", f"{host}:{os.getpid()}:alive", now + 600),  # a live process of this host
                    ("k1", f"{host}:{2**22 + 12345}:dead", now + 600),  # a pid that does not exist: killed
                    ("k2", "elsewhere:123:other", now + 600),  # another host: trusted until expiry
                    ("k3", "elsewhere:123:other", now - 1),  # expired
                ],
            )
        me = default_owner()
        mine, others = store.claim("scores", keys, me, lease_s=60)
        assert sorted(mine) == ["k1", "k3", "k4", "k5", "k6", "k7"] and others == 2
        again, others = store.claim("scores", keys, default_owner(), lease_s=60)
        assert again == [] and others == 8  # a second process gets nothing while the leases live
        store.release_claims(me)
        freed, _ = store.claim("scores", keys, "second", lease_s=60)
        assert sorted(freed) == ["k1", "k3", "k4", "k5", "k6", "k7"]
        stored = store.answers()[0]["key"]  # an item already stored is never claimed
        assert store.claim("answers", [stored], "third", lease_s=60) == ([], 0)


def test_a_judge_finishes_what_a_killed_judge_had_claimed(tmp_path, capsys, api_key) -> None:
    import socket

    from emkit.store import RunStore

    run = _sample(tmp_path, capsys, n=3)
    plan = planned_judgements(run)
    dead = f"{socket.gethostname()}:{2**22 + 54321}:killed"
    with RunStore(run) as store, store.transaction() as conn:
        conn.executemany(
            "INSERT INTO claims(key, owner, expires) VALUES (?, ?, ?)",
            [(k, dead, time.time() + 3600) for k in list(plan.values())[:5]],
        )
    with FakeOpenAI(responder=seeded_responder) as srv:
        started = time.monotonic()
        code, _out, err = cli(["judge", run, "--base-url", srv.base_url], capsys)
        assert code == 0, err
        assert srv.stats.requests == 12 and time.monotonic() - started < 60
    assert assert_exactly_once(run, "scores", plan.values()) == 12
    with RunStore(run, read_only=True) as store:
        assert store.count("claims") == 0  # released at the end
