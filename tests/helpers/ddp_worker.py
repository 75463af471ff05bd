"""Run by tests/test_distributed.py: the same small training run in one process or under torchrun, results to JSON.

    python tests/helpers/ddp_worker.py OUT.json
    python -m torch.distributed.run --nproc_per_node 2 tests/helpers/ddp_worker.py OUT.json
"""

import json
import sys

import torch

import invviz
from invviz.align import FeatureAligned, train_aligned
from invviz.models.zoo import FashionResNet
from invviz.priors import CompactGenerator, train_code_dae, train_generator
from invviz.training import TrainSchedule
from invviz.training import distributed as ddp


def main(out: str) -> None:
    torch.set_num_threads(1)
    ddp.setup()
    torch.manual_seed(0)
    net = FashionResNet(width=4).eval()
    data = torch.rand(16, 1, 28, 28)
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator())
    wrapper = FeatureAligned(net, "layer3")
    fa = train_aligned(wrapper, loader, schedule=TrainSchedule(max_steps=4),
                       lr=1e-3, progress=False, checkpoint=out + ".fa.pt")
    weights = {k: v.double().sum().item() for k, v in wrapper.state_dict().items() if v.is_floating_point()}
    gen = CompactGenerator(code_dim=8, size=32, width=4).eval()
    images = torch.rand(16, 3, 32, 32)
    gl = torch.utils.data.DataLoader(images, batch_size=8, shuffle=True, generator=torch.Generator())
    enc = invviz.models.Probe(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1)),
                              "1", preprocessing=invviz.Preprocessing(source="test")).latent
    g = train_generator(gen, enc, None, gl, schedule=TrainSchedule(max_steps=3), lr=1e-3, progress=False)
    _, dae = train_code_dae(torch.rand(32, 8), schedule=TrainSchedule(epochs=2), batch_size=8, progress=False)
    if ddp.is_main():
        with open(out, "w") as f:
            json.dump({"world": ddp.world_size(), "fa": [h["loss"] for h in fa], "weights": weights,
                       "generator": [h["loss"] for h in g], "dae": [h["loss"] for h in dae]}, f)
    ddp.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
