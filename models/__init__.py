"""Detectors and classifiers: the anomaly ensemble, LightGBM, calibration, registry.

Public entry points:

- :func:`make_unsupervised_ensemble` - the default ECOD/COPOD/IForest/HBOS ensemble;
- :func:`fit_bundle` - fit a :class:`RiskBundle` (what the engine scores with);
- :class:`ModelRegistry` - versioned, checksummed artifacts with current/challenger.

This package imports only ``contracts`` (and numpy, scikit-learn, LightGBM); ``text``
holds the text classifiers.
"""

from models.bundle import ANOMALY_FEATURE, RiskBundle, fit_bundle
from models.detectors import COPOD, DETECTORS, ECOD, HBOS, IForest, NotFittedError
from models.ensemble import UnsupervisedEnsemble, make_unsupervised_ensemble
from models.registry import ModelRegistry

__all__ = [
    "ANOMALY_FEATURE",
    "COPOD",
    "DETECTORS",
    "ECOD",
    "HBOS",
    "IForest",
    "ModelRegistry",
    "NotFittedError",
    "RiskBundle",
    "UnsupervisedEnsemble",
    "fit_bundle",
    "make_unsupervised_ensemble",
]
