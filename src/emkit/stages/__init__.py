"""The stages of a study, one module each: dataset -> train -> sample -> code-vuln -> judge -> probe -> report.

Why a package: a stage used to be a ``kind`` string that the orchestrator branched on, with its inputs
in an untyped dict. Here each stage module owns a typed, picklable job, a ``plan`` that reads only the
experiment and the run store, and a ``run(job, store, console)``; :mod:`emkit.stages.registry` lists
them in order, :func:`emkit.pipeline.run_plan` loops over that list, and
:mod:`emkit.stages.executors` runs any stage's jobs locally or on Ray. Adding a stage is one new module
here plus one line in the registry.

Nothing is imported here, so importing one stage never imports the others.
"""
