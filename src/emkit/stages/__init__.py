"""The stages of a study, one module each: dataset -> train -> sample -> code-vuln -> judge -> probe -> report.

Why a package: a stage used to be a ``kind`` string that the orchestrator branched on, with its inputs
in an untyped dict. Here each stage module owns a typed, picklable job, a ``plan`` that reads only the
experiment (expanded in :class:`~emkit.stages.base.PlanContext`) and the run store, and a
``run(job, store, console)``; :mod:`emkit.stages.registry` lists them in order,
:func:`emkit.pipeline.run_plan` loops over that list, and :mod:`emkit.stages.executors` runs any
stage's jobs locally or on Ray.

Adding a stage (one file, one line):

1. ``emkit/stages/<name>.py`` with ``INFO = StageInfo("<name>", rank=...)`` (``remote=True`` if its
   jobs may run on a Ray worker), a frozen dataclass job (extend :class:`~emkit.stages.base.ModelJob`
   for a job on one model), ``plan(ctx, store, earlier) -> list[PlanStep]`` (read, never write; mark
   each step ``done`` from what the store holds) and ``run(job, store, console) -> dict | None``
   (``record=True`` on a step makes the orchestrator write its completion record with that dict);
2. its module path in :data:`emkit.stages.registry.STAGES`, where it should run.

Nothing is imported here, so importing one stage never imports the others.
"""
