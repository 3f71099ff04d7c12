"""inspect_ai interop (the ``inspect`` extra: ``pip install 'emkit[inspect]'``).

- :mod:`.provider`: emkit's engines as inspect models (``--model emkit/<emkit model name>``);
- :mod:`.tasks` and :mod:`.scorer`: emkit question sets as inspect tasks scored by emkit's judges
  (``inspect eval emkit/default``);
- :mod:`.importer`: inspect logs into a run store (``emkit import inspect LOG...``);
- :mod:`.benchmarks`: inspect_evals' benchmarks (TruthfulQA, StrongREJECT, MMLU, HumanEval) run on
  a study's models by the ``benchmarks`` stage.

Nothing here is imported by emkit's core: only these modules need inspect_ai.
"""
