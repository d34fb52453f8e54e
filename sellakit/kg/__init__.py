"""Multi-source knowledge graphs: joint pre-training, linked subgraph, three-level KD.

Data flows one way: ``data -> protocol -> pretrain -> subgraph -> distill -> compare``;
``protocol`` is the one data rule every model follows (training, selection and test facts);
``compare`` runs the comparison on one target and ``sellakit bench kg`` writes the benchmark
tables. See notebooks 06-07, which import from here.
"""

from sellakit.kg.compare import (METHODS, SETTINGS, StudentConfig, ablation_configs,
                                 compare_on_target, filtered_test_metrics, kd_comparisons,
                                 resolve_setting, teacher_kgs)
from sellakit.kg.data import (DBP5L_ENV, KG, DataError, MultiSourceKG, derived_multisource,
                              leak_free_triples, load_dbp5l, load_multisource, load_pykeen,
                              locate_dbp5l)
from sellakit.kg.distill import KDConfig
from sellakit.kg.evaluate import evaluate
from sellakit.kg.items import FilmFacts, item_kg_vectors, with_heldout_film
from sellakit.kg.models import KGEModel
from sellakit.kg.pretrain import (TeacherConfig, alignment_hits, build_joint, kg_scorer,
                                  load_or_pretrain_teacher, unlinked_pairs)
from sellakit.kg.protocol import DataRule, data_rule
from sellakit.kg.subgraph import LinkedSubgraph, build_linked_subgraph
from sellakit.kg.train import TrainConfig, train_kge

__all__ = ["KG", "DataError", "MultiSourceKG", "DBP5L_ENV", "derived_multisource",
           "leak_free_triples", "load_dbp5l", "load_multisource", "locate_dbp5l", "load_pykeen",
           "DataRule", "data_rule", "KDConfig", "evaluate", "KGEModel", "TeacherConfig",
           "build_joint", "kg_scorer", "load_or_pretrain_teacher", "alignment_hits",
           "unlinked_pairs", "LinkedSubgraph", "build_linked_subgraph", "TrainConfig",
           "train_kge", "StudentConfig", "compare_on_target", "ablation_configs",
           "filtered_test_metrics", "kd_comparisons", "METHODS", "SETTINGS",
           "resolve_setting", "teacher_kgs", "FilmFacts", "item_kg_vectors", "with_heldout_film"]
