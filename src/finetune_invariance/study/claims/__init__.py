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
  no stricter: "strong" is r >= :data:`.evidence.STRONG_R`, "almost 0" and "similarly"
  are stated bounds, a paired difference gets a paired test. An undefined statistic (NaN)
  never makes a claim hold.
- **Rows.** Sections 4.1-4.3 read each run's analysed checkpoint (its epoch in the
  ``table1_accuracy`` table) of the default variant; Sections 4.1 and 4.3 the runs of the
  source that plays the paper's ImageNet (``imagenet_source``), whose runs those sections
  of the paper show, Section 4.2 the classification runs of every finetune dataset. Section
  4.4 reads the dynamics runs (metrics at :data:`.evidence.MIN_DYNAMICS_EPOCHS` or more
  epochs; the robustness tables hold exactly those), of the default variant except for the
  variant claims (Figs. 6, 15).
- **Layers.** Claims use the paper's layer numbers 0..12, mapped onto a model of depth D
  with :func:`..paper.scaled_layer` (a range maps its two ends); each evidence says how,
  e.g. "paper layers 7-12 = layers 2-4 here".
- **Seed spread.** Values are compared as seed means. A per-seed aggregate (e.g. the mean
  over some layers) is formed within each seed first; a difference counts only where the
  difference of the seed means exceeds the larger of the two seed standard deviations
  (ddof=1; 0 with one seed), see :class:`.evidence.SeedStats`. Correlations (r of seed-mean
  profiles) and accuracies have no seed spread; their thresholds are stated per claim.
- **Settings.** A claim evaluated in several settings (datasets, sources, runs) holds
  only if it holds in every one; the evidence lists failing settings first, and beside a
  failure the report gives what its runs reached (Table 1).
- **Absent rows.** A claim whose rows are absent is 'not measured by this config' with
  the reason, never an error; a measured failure is never reported as unmeasured.
"""

from . import appendix, beyond, dynamics, flow, source, task  # noqa: F401  (each registers its claims)
from .registry import CLAIMS, FAILS, HOLDS, NOT_MEASURED, SECTIONS, VERDICTS, Claim, Finding, claim
from .report import COLUMNS, About, ClaimsReport, ReportSection, claims_report, evaluate_claims

__all__ = [
    "CLAIMS",
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
