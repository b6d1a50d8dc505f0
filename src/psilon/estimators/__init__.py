"""scikit-learn estimators over the lambda path: :class:`PSiLONRegressor`, :class:`PSiLONClassifier`.

Like ``LassoCV``, one ``fit`` trains the whole lambda grid (all lambdas as members of one
stacked network, see :func:`psilon.train.lambda_path`) and selects the lambda with the
lowest validation loss (MSE on the scaled target / log loss):

* ``eval_set=(X_val, y_val)`` given to ``fit``: train on all of ``X``, validate there;
* ``selection='holdout'``: a random ``validation_fraction`` of ``X`` (stratified for
  classifiers) validates; the selected member (trained on the rest) is kept, no refit;
* ``selection='cv'``: ``cv`` folds x lambdas members in one run; the lambda with the
  lowest mean validation loss is refitted on all of ``X``.

Preprocessing (default, :func:`default_preprocessor`, fitted on all of ``X`` given to
fit): numeric columns are standardized (after an exact power-of-two rescaling per column,
so that any finite magnitude works), then missing values set to 0 (the mean) with a
missing indicator column per feature that had missing values at fit; other columns
(strings, categories, booleans; DataFrames only) are one-hot encoded with missing values
as their own category and unseen categories encoded as all zeros. ``preprocessor=``
replaces it (any scikit-learn transformer producing numbers) or ``'passthrough'`` turns
it off.

Regression targets are scaled as in the paper, ``(y - median) / (IQR / 2)`` (IQR 0 ->
standard deviation -> 1; :func:`robust_target_scaling`), and mapped back at predict.
``lipschitz_bound_`` is in units of the prediction (regression) or of the logits
(classification), with respect to the l_inf norm of the *preprocessed* features.

Certificates (``docs/certificates.md``): ``lipschitz_max`` (selection within a certified
bound), ``certified_radius`` / ``prediction_bounds`` in the units of ``X`` or standardized,
``feature_path_norms_``, ``plot_frontier``; ``export_onnx`` writes the compacted network
with the preprocessing folded in.

Modules: ``_params`` (hyper-parameter checks), ``_inputs`` (X / y / label checks),
``_preprocessing`` (features and target scaling), ``_splits`` (holdout / CV / eval_set
rows), ``_selection`` (``path_``, ``history_`` and the selected network from a
:class:`psilon.train.TrainResult`), ``_persistence`` (``save`` / ``load``), ``_base``
(the shared estimator), ``_certificates`` (bounds in the units of ``X``, radii, attribution,
the frontier plot), ``_export`` (ONNX), ``_regressor``, ``_classifier``.
"""

from psilon.estimators._classifier import PSiLONClassifier
from psilon.estimators._preprocessing import default_preprocessor, robust_target_scaling
from psilon.estimators._regressor import PSiLONRegressor

__all__ = ["PSiLONClassifier", "PSiLONRegressor", "default_preprocessor", "robust_target_scaling"]
