"""Train an ordinary Fashion-MNIST classifier: the "user's pretrained network" of the feature-alignment experiments.

    python benchmarks/fashion_classifier.py            # 5 epochs, ~6 min on 2 CPU cores

A small ResNet (`invviz.models.zoo.FashionResNet`, width 32), cross-entropy, Adam 1e-3 with a cosine schedule,
batches of 128, no augmentation and nothing of feature alignment. Writes the weights (`--out`, a weights-only
checkpoint that `load_checkpoint` reads) and a JSON summary with the test accuracy beside them. Needs the Debian
package `dataset-fashion-mnist`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

from invviz.data import fashion_mnist
from invviz.io import save_state_dict, write_json
from invviz.models.loading import Normalize
from invviz.models.zoo import FashionResNet
from invviz.training import TrainSchedule, fit


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    normalize = Normalize(model.invviz_preprocessing)
    model.eval()
    pred = torch.cat([model(normalize(images[i:i + 1000])).argmax(1) for i in range(0, len(images), 1000)])
    return float((pred == labels).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/fashion_classifier.pt")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    x_train, y_train = fashion_mnist("train")
    x_test, y_test = fashion_mnist("test")
    model = FashionResNet(width=args.width)
    normalize = Normalize(model.invviz_preprocessing)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=args.batch,
                                         shuffle=True, generator=torch.Generator())
    total = args.epochs * len(loader)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))

    def step(batch, _):
        images, labels = batch
        model.train()
        loss = F.cross_entropy(model(normalize(images)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss}

    t0 = time.perf_counter()
    fit(step, loader, schedule=TrainSchedule(epochs=args.epochs, seed=args.seed),
        modules={"model": model}, optimizers={"adam": opt},
        checkpoint=args.out + ".train", desc="classifier", schedulers={"cosine": sched})
    seconds = time.perf_counter() - t0
    model.eval()
    save_state_dict(args.out, model.state_dict())
    summary = {"command": f"python benchmarks/fashion_classifier.py --epochs {args.epochs} --width {args.width}"
                          f" --batch {args.batch} --lr {args.lr} --seed {args.seed}",
               "test_accuracy": accuracy(model, x_test, y_test), "train_accuracy_first_10k":
               accuracy(model, x_train[:10000], y_train[:10000]), "train_seconds_this_run": seconds,
               "weights": args.out}
    write_json(os.path.splitext(args.out)[0] + ".json", summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
