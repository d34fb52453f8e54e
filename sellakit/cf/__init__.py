"""Collaborative-filtering models (MF, LightGCN, SASRec) and their one trainer."""

from sellakit.cf.models import MF, LightGCN, SASRec, build_model
from sellakit.cf.train import CFConfig, TrainResult, fit_and_evaluate, predict, train_cf

__all__ = ["MF", "LightGCN", "SASRec", "build_model", "CFConfig", "TrainResult", "predict",
           "train_cf", "fit_and_evaluate"]
