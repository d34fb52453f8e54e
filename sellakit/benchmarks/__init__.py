"""The benchmarks behind the README's tables, one module per target.

Each target has a ``*_benchmark`` function returning JSON-ready results and a ``*_markdown``
function making the table, which names the command that produced it; :func:`write_report`
writes both (``sellakit bench TARGET --out FILE.json`` calls them). Published numbers stand
beside ours, read from :mod:`sellakit.published`. Results live in ``bench/``.

Targets: ``cf``, ``align``, ``rec``, ``rec-kg``, ``rec-scoring``, ``rec-prefix``, ``rec-curve``,
``rec-grid``, ``rec-study``, ``kg``, ``kg-sweep``, ``kg-eval``, ``kg-protocols``, ``cuda`` (the
GPU check) and ``series`` (the quick series' time).
"""

from sellakit.benchmarks.rec import expected_box
from sellakit.benchmarks.rec_kg import KG_ABLATION_MODES, PARTNERS, SLICES, rec_kg_benchmark
from sellakit.benchmarks.report import check_out, markdown_table, write_report

__all__ = ["check_out", "markdown_table", "write_report", "expected_box", "TARGETS",
           "rec_kg_benchmark", "PARTNERS", "SLICES", "KG_ABLATION_MODES"]

#: ``sellakit bench`` targets -> what each measures.
TARGETS = {
    "cf": "count rates, MF with and without biases, LightGCN, SASRec on a CTR split; CoLLM's "
          "published rows beside them",
    "align": "plain against aligned MF; alignment measures before and after",
    "rec": "MF, TALLRec-, CoLLM-style prompts and SeLLa-Rec (and ablations) with one LLM; "
           "count rates and MF with biases beside them",
    "rec-kg": "the <KG_ID> slot on MovieLens-100k: KG methods against their partners, "
              "ablations and CF baselines, on all, item-cold and user-cold test rows",
    "rec-scoring": "SeLLa-Rec scoring: length-sorted batches against one prompt at a time",
    "rec-prefix": "stage-3 step with the text's key/value cache against the whole prompt",
    "rec-curve": "stage 1's learning curve: validation AUC by training rows, the item rate "
                 "beside (resumable)",
    "rec-grid": "SeLLa-Rec's switches on one stage 1, chosen on validation (resumable)",
    "rec-study": "the grid's choice, its ablations, CoLLM-, TALLRec-style and the baselines, "
                 "three seeds (resumable)",
    "kg": "per target: the setting's teacher; J2 (cold, warm), scratch, the student with KD, "
          "without KD, without warm start, every row at every seed",
    "kg-sweep": "where KD should matter: low-resource targets (facts, links) or the student's "
                "width, new-KG setting, each point written as it finishes",
    "kg-eval": "our filtered evaluator against PyKEEN's RankBasedEvaluator (time, equality)",
    "kg-protocols": "the target-only model under KEnS's protocol (or any switch) beside the "
                    "published rows, and under every filter, direction and test subset",
    "cuda": "the CUDA path on a GPU: stages end to end, step sweeps (random weights)",
    "series": "the quick series' time per notebook: first from an empty cache, then warm "
              "(resumable)",
}
