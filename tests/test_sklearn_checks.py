"""scikit-learn's own estimator checks (``parametrize_with_checks``) for FunBaT and FunBaTCP.

The instances are small: rank 1 and 4 sweeps keep each fit short. Most checks' data
have 10 features, which funbat fits as one spatial mode (``group_many_columns``).

Checks that cannot apply to this estimator are listed in ``_NOT_APPLICABLE``, each with
the one-line reason; every other check must pass.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from funbat import FunBaT, FunBaTCP

#: Checks whose premise does not hold for a model that reads each column of X as a
#: tensor mode (in its own words, via its own InputError messages).
_NOT_APPLICABLE = {
    "check_n_features_in_after_fitting": (
        "predict rejects X of the wrong width with an InputError that counts modes ('X has 1 "
        "modes (['x0']) but the model was fitted on 4'), since a mode may span several "
        "columns; the check wants sklearn's 'X has 1 features, but ...' wording"
    ),
    "check_estimators_empty_data_messages": (
        "an X with 0 columns has no modes: fit raises InputError (a ValueError) 'X has no "
        "columns; give one column per mode', not check_array's '0 feature(s)' wording"
    ),
    "check_fit2d_1sample": (
        "the model standardises y, so it needs 2 observations: fit raises InputError 'need at "
        "least 2 observations to fit; got 1', not one of the check's '1 sample' phrasings"
    ),
    "check_fit1d": (
        "a 1-D X is read on purpose as the coordinates of a single mode (one column, a 1-D "
        "tensor), so fit accepts it instead of raising"
    ),
    "check_fit2d_predict1d": (
        "a 1-D X is read as one mode's column, so predict raises InputError 'X has 1 modes "
        "... fitted on 3' (a ValueError), not check_array's 'Reshape your data'"
    ),
    "check_requires_y_none": (
        "fit(X, y=None) means X is an xarray.DataArray holding coordinates and values, so "
        "the error says 'give y, or the data as an xarray.DataArray', not sklearn's wording"
    ),
    "check_supervised_y_2d": (
        "a y of shape (n, 1) is read as the (n,) target by design (funbat.data.as_target "
        "flattens one row or column), without a DataConversionWarning; predictions agree"
    ),
    "check_dtype_object": (
        "an object column of numbers is a continuous mode, but one with a dict cell is "
        "categorical (discrete) by design and fails as an unhashable category (TypeError "
        "'unhashable type'), not as non-numeric"
    ),
}

def _expected_failed_checks(estimator) -> dict[str, str]:
    """The same for FunBaT and FunBaTCP: both read X the same way."""
    return _NOT_APPLICABLE


@parametrize_with_checks(
    [FunBaT(rank=1, max_iter=4, random_state=0), FunBaTCP(rank=1, max_iter=4, random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
