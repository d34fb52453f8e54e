"""Multi-source knowledge graphs: joint pre-training, linked subgraph, three-level KD.

Data flows one way: ``data -> pretrain -> subgraph -> distill -> evaluate``; ``compare`` runs
the comparison on one target and ``bench`` writes the benchmark tables. See notebooks 06-07.
"""

from sellakit.kg.data import (KG, DataError, MultiSourceKG, derived_multisource,
                              leak_free_triples, load_dbp5l, load_pykeen)
from sellakit.kg.distill import KDConfig
from sellakit.kg.evaluate import evaluate
from sellakit.kg.models import KGEModel
from sellakit.kg.pretrain import TeacherConfig, build_joint, load_or_pretrain_teacher
from sellakit.kg.subgraph import build_linked_subgraph
from sellakit.kg.train import TrainConfig, train_kge

__all__ = ["KG", "DataError", "MultiSourceKG", "derived_multisource", "leak_free_triples",
           "load_dbp5l", "load_pykeen", "KDConfig", "evaluate", "KGEModel", "TeacherConfig",
           "build_joint", "load_or_pretrain_teacher", "build_linked_subgraph", "TrainConfig",
           "train_kge"]
