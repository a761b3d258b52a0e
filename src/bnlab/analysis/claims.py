"""The claims the lab puts to the test, each with the measurement that decides it: the rows of
the verdict table in docs/results.md. Adding a row is adding a Claim here."""

from bnlab.analysis.verdicts import AccuracyAtStep, Claim, Generalization, ProbeMeasure, ModelMetric

NOTEBOOK = "the TF1 notebook"
IOFFE = "Ioffe & Szegedy 2015"
SANTURKAR = "Santurkar et al. 2018"

ACCURACY = ModelMetric("test accuracy", unit="%", difference_unit=" points", scale=100)
LOSS = ModelMetric("test loss", column="test_loss", digits=4)
# Pooled over a layer's units, in widths of its 15–85th percentile range (probe_tables.drift_per_run).
DRIFT = ProbeMeasure("drift of the median input to the nonlinearities, mean over hidden layers",
                     unit=" widths", difference_unit=" widths")
LAST_LAYER_DRIFT = ProbeMeasure("drift of the median input to the last hidden layer's sigmoids",
                                unit=" widths", difference_unit=" widths", last_layer=True)
DEAD = ProbeMeasure("fraction of dead ReLUs at the end, mean over hidden layers", quantity="dead",
                    unit="%", difference_unit=" points", scale=100, digits=1)
EARLY = AccuracyAtStep("test accuracy at step 1,000", unit="%", difference_unit=" points", scale=100, step=1000)

CLAIMS = (
    Claim("shift", "BN reduces covariate shift: the inputs to the nonlinearities stop drifting", NOTEBOOK,
          "notebook", DRIFT, -1, figures=("input_median_by_layer.png",)),
    Claim("dead", "without BN, inputs shifted below zero switch ReLUs off", NOTEBOOK, "notebook", DEAD, -1,
          figures=("dead_units.png",)),
    Claim("notebook", "with BN the test accuracy is higher", NOTEBOOK, "notebook", ACCURACY, +1,
          figures=("val_accuracy.png",)),
    Claim("notebook_loss", "with BN the test loss is lower", NOTEBOOK, "notebook", LOSS, -1),
    Claim("ioffe_faster", "BN reaches high test accuracy faster (Fig. 1a), at the rate best for the plain network",
          IOFFE, "ioffe2015", EARLY, +1, figures=("test_accuracy_by_step.png",)),
    Claim("ioffe_higher", "BN reaches a higher test accuracy (Fig. 1a), at the rate best for the plain network",
          IOFFE, "ioffe2015", ACCURACY, +1),
    Claim("ioffe_slow_faster", "BN reaches high test accuracy faster (Fig. 1a), at SGD 0.1", IOFFE,
          "ioffe2015_slow", EARLY, +1, figures=("test_accuracy_by_step.png",)),
    Claim("ioffe_slow_higher", "BN reaches a higher test accuracy (Fig. 1a), at SGD 0.1", IOFFE,
          "ioffe2015_slow", ACCURACY, +1),
    Claim("ioffe_stable", "with BN a sigmoid's input distribution is stable, without it it keeps changing "
          "(Fig. 1b, c), at the rate best for the plain network", IOFFE, "ioffe2015", LAST_LAYER_DRIFT, -1,
          figures=("percentiles_layer3_unit0.png",)),
    Claim("ioffe_slow_stable", "the same, at SGD 0.1", IOFFE, "ioffe2015_slow", LAST_LAYER_DRIFT, -1,
          figures=("percentiles_layer3_unit0.png",)),
    Claim("noisy", "BN's gain survives injected covariate shift (noisy BN vs plain)", SANTURKAR, "noisy_bn",
          ACCURACY, +1, variant="noisy_bn", figures=("test_accuracy_by_step.png",)),
    Claim("large_rate", "BN trains at learning rates where the plain network breaks (Adam 0.1)", SANTURKAR,
          "lr_sweep", ACCURACY, +1, point={"learning_rate": 0.1}, figures=("test_accuracy_vs_learning_rate.png",)),
    Claim("plain_best_rate", "BN helps at the learning rate best for the plain network (Adam 0.001)", NOTEBOOK,
          "lr_sweep", ACCURACY, +1, point={"learning_rate": 0.001}),
)

GENERALIZATIONS = (
    Generalization("always use BN: it raises test accuracy in every setting", NOTEBOOK,
                   ("notebook", "ioffe_higher", "ioffe_slow_higher", "plain_best_rate")),
    Generalization("BN makes training faster (Fig. 1a)", IOFFE, ("ioffe_faster", "ioffe_slow_faster")),
)
