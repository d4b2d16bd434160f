"""Time to accuracy: the README's fast MNIST configuration, three seeds.

    python benchmarks/time_to_accuracy.py [--seeds 0,1,2]

Trains ``fastann train --validation 0 --hidden 256 --epochs 3 --batch-size 64
--learning-rate 0.003 --lr-schedule cosine`` (the same model through the API)
on the 60,000 MNIST training images, once per seed, and prints each run's
training seconds (the sum of its epochs' times: the compiled loop, shuffling
and kernel loading included; process start-up, data loading and Numba's
one-time initialization not) and test accuracy, then the medians.
"""
import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):
    sys.path.insert(0, ROOT)

CONFIG = dict(hidden_layer_sizes=(256,), epochs=3, batch_size=64, learning_rate=0.003,
              lr_schedule="cosine")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    from fastann import MLPClassifier
    from fastann.datasets import load_mnist
    X, y = load_mnist("train")
    X_test, y_test = load_mnist("test")
    seconds, accuracies = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        model = MLPClassifier(random_state=seed, **CONFIG).fit(X, y)
        seconds.append(sum(h["seconds"] for h in model.history_))
        accuracies.append(model.score(X_test, y_test))
        epochs = ", ".join(f"{h['seconds']:.2f}" for h in model.history_)
        print(f"seed {seed}: {seconds[-1]:.2f} s of training ({epochs}), "
              f"test accuracy {100 * accuracies[-1]:.2f}%", flush=True)
    print(f"median: {statistics.median(seconds):.2f} s, "
          f"{100 * statistics.median(accuracies):.2f}% test accuracy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
