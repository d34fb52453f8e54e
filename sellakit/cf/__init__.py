"""Collaborative-filtering models (MF, biased MF, LightGCN, SASRec), their table and their one
trainer; the count-rate baselines (:mod:`sellakit.cf.rates`)."""

from sellakit.cf.models import (CF_MODELS, MF, BiasedMF, CFModel, CFModelSpec, LightGCN, SASRec,
                                build_model, with_model)
from sellakit.cf.rates import RATE_BASELINES, evaluate_rates, rate_scores
from sellakit.cf.train import CFConfig, TrainResult, fit_and_evaluate, predict, train_cf

__all__ = ["CFModel", "MF", "BiasedMF", "LightGCN", "SASRec", "CFModelSpec", "CF_MODELS", "with_model",
           "build_model", "CFConfig", "TrainResult", "predict", "train_cf", "fit_and_evaluate",
           "RATE_BASELINES", "rate_scores", "evaluate_rates"]
