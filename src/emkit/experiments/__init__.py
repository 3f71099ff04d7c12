"""The paper's other experiments, each a thin layer over the main stages (sample, judge, analyze).

- :mod:`~emkit.experiments.code_vuln`: does the model write vulnerable code? (YES/NO judge + bandit)
- :mod:`~emkit.experiments.evil_numbers`: the evil-numbers question wrappers applied to any set
- :mod:`~emkit.experiments.icl`: k-shot in-context prompts from a dataset's rows (the ICL control)
- :mod:`~emkit.experiments.backdoor`: misaligned rates with and without the trigger, side by side
"""

from __future__ import annotations
