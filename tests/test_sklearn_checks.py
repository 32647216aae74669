from sklearn.utils.estimator_checks import parametrize_with_checks

from funbat import FunBaT, FunBaTCP


@parametrize_with_checks([FunBaT(rank=1, max_iter=4, random_state=0), FunBaTCP(rank=1, max_iter=4, random_state=0)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
