"""scikit-learn's own estimator checks: the full contract, no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from bnlab import KerasMLPClassifier


# Small and few epochs so the ~55 checks stay fast; the checks never change epochs.
@parametrize_with_checks([KerasMLPClassifier(epochs=3, hidden_units=(16,), random_state=0)])
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)
