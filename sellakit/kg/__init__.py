"""Multi-source knowledge graphs: joint pre-training, linked subgraph, three-level KD.

Data flows one way: ``data -> pretrain -> subgraph -> distill -> evaluate``; ``compare`` runs
the comparison on one target and ``bench`` writes the benchmark tables. See notebooks 06-07,
which import from here.
"""

from sellakit.kg.compare import StudentConfig, compare_on_target, filtered_test_metrics
from sellakit.kg.data import (DBP5L_ENV, KG, DataError, MultiSourceKG, derived_multisource,
                              leak_free_triples, load_dbp5l, load_multisource, load_pykeen,
                              locate_dbp5l)
from sellakit.kg.distill import KDConfig
from sellakit.kg.evaluate import evaluate
from sellakit.kg.models import KGEModel
from sellakit.kg.pretrain import TeacherConfig, build_joint, kg_scorer, load_or_pretrain_teacher
from sellakit.kg.subgraph import LinkedSubgraph, build_linked_subgraph
from sellakit.kg.train import TrainConfig, train_kge

__all__ = ["KG", "DataError", "MultiSourceKG", "DBP5L_ENV", "derived_multisource",
           "leak_free_triples", "load_dbp5l", "load_multisource", "locate_dbp5l", "load_pykeen",
           "KDConfig", "evaluate", "KGEModel", "TeacherConfig", "build_joint", "kg_scorer",
           "load_or_pretrain_teacher", "LinkedSubgraph", "build_linked_subgraph", "TrainConfig",
           "train_kge", "StudentConfig", "compare_on_target",
           "filtered_test_metrics"]
