"""The paper's findings (Sections 4.1-4.4, Appendix C.1) checked on the study's own tables.

Each claim is declared once, where it is evaluated (:func:`.registry.claim`): the paper's
sentence, the statistic computed from the tables, the threshold it must pass and the
paper's value, beside the code that decides it. The section modules register them in the
paper's order: :mod:`.task` (4.1), :mod:`.source` (4.2), :mod:`.flow` (4.3),
:mod:`.dynamics` (4.4, and the permutation test of its headline, beyond the paper), :mod:`.appendix`
(C.1) and :mod:`.beyond` (beyond the paper).
:func:`evaluate_claims` gives one verdict per claim with the numbers behind it;
:func:`claims_report` writes them up, Markdown and HTML. Conventions shared by every claim:

- **As strong as the sentence.** A threshold tests what the sentence says, no looser and
  no stricter; every word's reading, with its reason, is in docs/claims.md ("Readings").
  A plain comparison ("lower", "higher", "above") counts only beyond the noise (the seed
  rule for seed means, one standard error of Fisher's z for correlations); "significantly"
  is a one-sided test at :data:`.evidence.ALPHA`; "substantially" adds a size; "strong" is
  r >= :data:`.evidence.STRONG_R`; a paired difference gets a paired test; "no clear
  trend" and "similarly" are equivalence tests, never a mere failure to find a difference.
- **Settings.** A claim about several settings (datasets, sources, tasks, runs) is
  measured only when every setting it names is: the settings are the study's roster (every
  run any table has rows of, :attr:`.evidence.StudyTables.roster`), so a run whose rows
  are missing is an unmeasured setting, never a skipped one. Each setting's outcome is
  collected before the verdict: any measured failure, "does not hold" (an unmeasured
  setting never hides it); else any unmeasured setting, "not measured"; else "holds".
- **Undefined is unmeasured.** A setting whose rows are absent or incomplete (a missing
  layer, seed or cell), whose values are NaN, or whose statistic is undefined (a constant
  series' r, a seed sd of one seed) is "not measured" with the reason: never "holds",
  never a measured failure, never an error.
- **Rows.** Sections 4.1-4.3 read each run's analysed checkpoint (its epoch in the
  ``table1_accuracy`` table) of the default variant; Sections 4.1 and 4.3 the runs of the
  source that plays the paper's ImageNet (``imagenet_source``), on every dataset it was
  finetuned on; Section 4.2 the classification runs of every dataset with runs of two or
  more sources. Section 4.4 reads the default variant's dynamics runs
  (:attr:`.evidence.StudyTables.dynamics_roster`), but for the variant claims (Figs. 6, 15).
- **Layers.** Claims use the paper's layer numbers 0..12, mapped onto a model of depth D
  with :func:`..paper.scaled_layer` (a range maps its two ends); each evidence says how,
  e.g. "paper layers 7-12 = layers 2-4 here". Models of different depths are compared at
  the same paper layers.
- **Seed spread.** Values are compared as seed means. A per-seed aggregate (e.g. the mean
  over some layers) is formed within each seed first; a plain difference counts only where
  the difference of the seed means exceeds the larger of the two seed standard deviations
  (ddof=1), see :class:`.evidence.SeedStats`; with one seed it is undefined.
- **Inference across epochs.** A correlation across epochs is judged by the p-value config
  ``robustness.inference`` names: the paper's parametric one (default) or the permutation
  test that respects time series (:func:`..statistics.surrogate_p_values`); the evidence
  shows both.
- **Facts.** Beside a failure the report gives what the failing settings' runs reached
  (Table 1).
"""

from . import appendix, beyond, dynamics, flow, source, task  # noqa: F401  (each registers its claims)
from .evidence import CLAIM_TABLES
from .registry import CLAIMS, FAILS, HOLDS, NOT_MEASURED, SECTIONS, VERDICTS, Claim, Finding, claim
from .report import COLUMNS, About, ClaimsReport, ReportSection, claims_report, evaluate_claims

__all__ = [
    "CLAIMS",
    "CLAIM_TABLES",
    "COLUMNS",
    "FAILS",
    "HOLDS",
    "NOT_MEASURED",
    "SECTIONS",
    "VERDICTS",
    "About",
    "Claim",
    "ClaimsReport",
    "Finding",
    "ReportSection",
    "claim",
    "claims_report",
    "evaluate_claims",
]
