"""Bad input, across every public verb: a typed `InvvizError` that says what was expected — and the user's model
exactly as it was (no hooks, the same train/eval and requires_grad flags, the same weights and BN statistics)."""

import math
import pickle

import pytest
import torch
from conftest import flags_of, hooks_on
from torch import nn

import invviz
from invviz import errors as E
from invviz.align import FeatureAligned, train_aligned
from invviz.data import fashion_mnist, image_folder, load_image, load_photo
from invviz.ifv import IFVObjective, critical_space, match, realize, recover_objective, reoptimize, sample_targets
from invviz.models import Preprocessing, Probe, list_layers, load_model
from invviz.optvis import (
    CPPNImage,
    Jitter,
    Pad,
    PixelImage,
    RandomRotate,
    RandomScale,
    channel,
    custom,
    direction,
    make_param,
    render,
    units,
)
from invviz.priors import (
    CompactGenerator,
    PPGNSettings,
    code_statistics,
    dgn_am,
    load_generator_state,
    ppgn_h,
    train_code_dae,
    train_generator,
)
from invviz.training import TrainSchedule, fit

PREP = Preprocessing(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(3, 32, 32), source="test")


def model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    net.invviz_preprocessing = PREP
    net.train()  # the user's mode, which must come back
    net[1].eval()
    net[0].weight.requires_grad_(False)
    return net


def gen() -> CompactGenerator:
    torch.manual_seed(1)
    return CompactGenerator(code_dim=8, size=32, width=4).eval()


def img(*shape, fill=None) -> torch.Tensor:
    return torch.rand(*shape) if fill is None else torch.full(shape, fill)


def loader(x) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(x, batch_size=2)


def empty_file(tmp) -> str:
    path = tmp / "empty.pt"
    path.write_bytes(b"")
    return str(path)


def file_in_the_way(tmp) -> str:
    blocker = tmp / "blocker"
    blocker.write_text("a file, not a folder")
    return str(blocker / "out.png")


# (id, call(net, tmp), error type, message fragment) — `net` is the user's model the call must leave alone
CASES = [
    # not a model at all
    ("visualize-str-model", lambda n, t: invviz.visualize("resnet18", "layer1", 0), E.ModelTypeError, "load_model"),
    ("visualize-int-model", lambda n, t: invviz.visualize(3, "layer1", 0), E.ModelTypeError, "nn.Module"),
    ("invert-str-model", lambda n, t: invviz.invert("resnet18", img(3, 32, 32)), E.ModelTypeError, "load_model"),
    ("realize-none-model", lambda n, t: realize(None, "0", torch.ones(8)), E.ModelTypeError, "nn.Module"),
    ("recover-str-model", lambda n, t: recover_objective("x", "0", img(3, 8, 8)), E.ModelTypeError, "load_model"),
    ("top-units-list-model", lambda n, t: invviz.top_units([n], "0", img(3, 32, 32)), E.ModelTypeError, "nn.Module"),
    ("dgn-am-str-model", lambda n, t: dgn_am("net", gen(), 0, layer="0"), E.ModelTypeError, "load_model"),
    ("fa-str-model", lambda n, t: FeatureAligned("resnet18"), E.ModelTypeError, "load_model"),
    ("atlas-str-model", lambda n, t: invviz.atlas("resnet18", ["layer1"], t / "a"), E.ModelTypeError, "load_model"),
    ("accentuate-str", lambda n, t: invviz.accentuate("m", "0", 0, img(3, 8, 8), reg_layer="0"), E.ModelTypeError,
     "load_model"),
    ("factorize-dict", lambda n, t: invviz.factorize({}, "0", img(3, 8, 8), 2), E.ModelTypeError, "nn.Module"),
    ("probe-str", lambda n, t: Probe("resnet18", "layer1"), E.ModelTypeError, "load_model"),
    ("render-not-objective", lambda n, t: render(n, "channel 3", PixelImage(8)), E.ParameterizationError, "Objective"),
    ("render-not-param", lambda n, t: render(n, channel("0", 0), torch.zeros(1, 3, 8, 8)), E.ParameterizationError,
     "ImageParam"),
    # learning rates, steps, intervals
    ("visualize-negative-lr", lambda n, t: invviz.visualize(n, "0", 0, lr=-1.0, steps=1), E.SettingError, "lr"),
    ("visualize-nan-lr", lambda n, t: invviz.visualize(n, "0", 0, lr=float("nan"), steps=1), E.SettingError, "lr"),
    ("visualize-zero-steps", lambda n, t: invviz.visualize(n, "0", 0, steps=0), E.SettingError, "steps"),
    ("visualize-float-steps", lambda n, t: invviz.visualize(n, "0", 0, steps=2.5), E.SettingError, "steps"),
    ("visualize-zero-batch", lambda n, t: invviz.visualize(n, "0", 0, batch=0, steps=1), E.SettingError, "batch"),
    ("visualize-bool-seed", lambda n, t: invviz.visualize(n, "0", 0, seed=True, steps=1), E.SettingError, "seed"),
    ("invert-zero-steps", lambda n, t: invviz.invert(n, img(3, 32, 32), layer="0", steps=0), E.SettingError, "steps"),
    ("realize-negative-lr", lambda n, t: realize(n, "0", torch.ones(8), lr=-0.1, adam_steps=1, lbfgs_steps=0),
     E.SettingError, "lr"),
    ("realize-no-steps", lambda n, t: realize(n, "0", torch.ones(8), adam_steps=0, lbfgs_steps=0), E.ObjectiveError,
     "at least one step"),
    ("realize-float-steps", lambda n, t: realize(n, "0", torch.ones(8), adam_steps=1.5), E.ObjectiveError, "int"),
    ("recover-zero-points", lambda n, t: recover_objective(n, "0", img(3, 8, 8), points=0), E.ObjectiveError,
     "points"),
    ("recover-bad-aggregation", lambda n, t: recover_objective(n, "0", img(3, 8, 8),
                                                               form=IFVObjective(aggregation="median")),
     E.ObjectiveError, "aggregation"),
    ("recover-form-string", lambda n, t: recover_objective(n, "0", img(3, 8, 8), form="mean"), E.ObjectiveError,
     "IFVObjective"),
    ("train-aligned-nan-lr", lambda n, t: train_aligned(FeatureAligned(n, "3"), loader(img(4, 3, 32, 32)),
                                                        lr=float("nan")), E.SettingError, "lr"),
    ("schedule-checkpoint-every-0", lambda n, t: TrainSchedule(checkpoint_every=0), E.SettingError, "checkpoint_every"),
    ("train-aligned-schedule-dict", lambda n, t: train_aligned(FeatureAligned(n, "3"), loader(img(4, 3, 32, 32)),
                                                               schedule={"max_steps": 1}), E.SettingError,
     "TrainSchedule"),
    ("train-aligned-negative-weight", lambda n, t: train_aligned(FeatureAligned(n, "3"), loader(img(4, 3, 32, 32)),
                                                                 distill_weight=-1.0), E.SettingError, "distill"),
    ("schedule-zero-max-steps", lambda n, t: TrainSchedule(max_steps=0), E.SettingError, "max_steps"),
    ("recipe-unknown-schedule", lambda n, t: invviz.settings.Recipe(64, 0.05, "linear", "fused"), E.SettingError,
     "lr_schedule"),
    ("fit-zero-epochs", lambda n, t: fit(lambda b, i: {}, [1], schedule=TrainSchedule(epochs=0),
                                         modules={}, optimizers={}), E.SettingError,
     "epochs"),
    ("train-generator-negative-lr", lambda n, t: train_generator(gen(), lambda x: x.mean((2, 3)), None,
                                                                 loader(img(4, 3, 32, 32)), lr=-1.0),
     E.SettingError, "lr"),
    ("train-dae-zero-lr", lambda n, t: train_code_dae(torch.rand(8, 4), lr=0.0), E.SettingError, "lr"),
    ("dgn-am-zero-steps", lambda n, t: dgn_am(n, gen(), channel("0", 0), steps=0), E.SettingError, "steps"),
    ("dgn-am-decay", lambda n, t: dgn_am(n, gen(), channel("0", 0), decay=1.5), E.ObjectiveError, "decay"),
    ("ppgn-zero-chains", lambda n, t: ppgn_h(n, gen(), lambda h: h, 1, chains=0), E.SettingError, "chains"),
    ("ppgn-negative-eps", lambda n, t: ppgn_h(n, gen(), lambda h: h, 1, settings=PPGNSettings(eps1=-1.0)),
     E.ObjectiveError, "eps1"),
    ("ppgn-settings-dict", lambda n, t: ppgn_h(n, gen(), lambda h: h, 1, settings={"eps1": 1e-3}), E.ObjectiveError,
     "PPGNSettings"),
    ("ppgn-reset-0", lambda n, t: ppgn_h(n, gen(), lambda h: h, 1, reset_every=0), E.SettingError, "reset_every"),
    ("atlas-batch-0", lambda n, t: invviz.atlas(n, ["0"], t / "a", batch=0), E.SettingError, "batch"),
    # paths that cannot be written, found before the work starts
    ("save-under-a-file", lambda n, t: invviz.visualize(n, "0", 0, steps=1, size=16, progress=False).save(
        file_in_the_way(t)), E.OutputPathError, "is a file"),
    ("save-to-a-folder", lambda n, t: invviz.visualize(n, "0", 0, steps=1, size=16, progress=False).save(t),
     E.OutputPathError, "is a folder"),
    ("train-aligned-checkpoint-under-file", lambda n, t: train_aligned(
        FeatureAligned(n, "3"), loader(img(4, 3, 32, 32)), checkpoint=file_in_the_way(t), progress=False),
     E.OutputPathError, "is a file"),
    ("fit-checkpoint-is-folder", lambda n, t: fit(lambda b, i: {"loss": 0.0}, [1], modules={}, optimizers={},
                                                  checkpoint=t, progress=False), E.OutputPathError, "folder"),
    ("atlas-out-under-file", lambda n, t: invviz.atlas(n, ["0"], file_in_the_way(t), steps=1), E.OutputPathError,
     "is a file"),
    ("fa-save-under-file", lambda n, t: FeatureAligned(n, "3").save(file_in_the_way(t)), E.OutputPathError,
     "is a file"),
    ("inversion-save-to-folder", lambda n, t: invviz.invert(n, img(3, 32, 32), layer="0", steps=1).save(t),
     E.OutputPathError, "folder"),
    # sizes and shapes
    ("size-float", lambda n, t: invviz.visualize(n, "0", 0, size=1.5, steps=1), E.SettingError, "size"),
    ("size-1-tuple", lambda n, t: invviz.visualize(n, "0", 0, size=(64,), steps=1), E.SettingError, "size"),
    ("size-str", lambda n, t: invviz.visualize(n, "0", 0, size="big", steps=1), E.SettingError, "size"),
    ("size-too-small-for-model", lambda n, t: invviz.visualize(nn.Sequential(nn.Conv2d(3, 2, 9)), "0", 0, size=8,
                                                               steps=1, progress=False, preprocessing=PREP),
     E.ImageSizeError, "too small"),
    ("grey-into-rgb-invert", lambda n, t: invviz.invert(n, img(1, 32, 32), layer="0"), E.ImageSizeError, "channel"),
    ("grey-into-rgb-top-units", lambda n, t: invviz.top_units(n, "0", img(1, 32, 32)), E.ImageSizeError, "channel"),
    ("grey-into-rgb-accentuate", lambda n, t: invviz.accentuate(n, "0", 0, img(1, 16, 16), reg_layer="0"),
     E.ImageSizeError, "channel"),
    ("batch-into-top-units", lambda n, t: invviz.top_units(n, "0", img(2, 3, 32, 32)), E.ImageSizeError,
     "one image"),
    ("2d-image", lambda n, t: invviz.invert(n, img(32, 32), layer="0"), E.ImageSizeError, "shape"),
    ("list-image", lambda n, t: invviz.invert(n, [[0.5]], layer="0"), E.ImageSizeError, "tensor"),
    ("invert-latent-wrong-size", lambda n, t: invviz.invert(n, latent=torch.zeros(7), layer="7"), E.ObjectiveError,
     "values per image"),
    ("invert-both", lambda n, t: invviz.invert(n, img(3, 32, 32), latent=torch.zeros(5), layer="7"),
     E.ObjectiveError, "exactly one"),
    ("fa-invert-wrong-size", lambda n, t: invviz.invert(FeatureAligned(n, "3"), img(3, 16, 16)), E.ImageSizeError,
     "decodes"),
    ("huge-jitter", lambda n, t: invviz.visualize(n, "0", 0, steps=1, size=16, transforms=[Jitter(40)]),
     E.ParameterizationError, "jitter"),
    # layers, objectives, units
    ("layer-int", lambda n, t: invviz.visualize(n, 3, 0, steps=1), E.LayerNotFoundError, "string"),
    ("layer-unknown", lambda n, t: invviz.visualize(n, "layer9", 0, steps=1), E.LayerNotFoundError, "list_layers"),
    ("layer-int-probe", lambda n, t: Probe(n, [0]), E.LayerNotFoundError, "string"),
    ("objective-arity", lambda n, t: invviz.visualize(n, "0", lambda a, b: a, steps=1), E.ObjectiveError,
     "one argument"),
    ("objective-str", lambda n, t: invviz.visualize(n, "0", "cat", steps=1), E.ObjectiveError, "channel index"),
    ("objective-needs-layer", lambda n, t: invviz.visualize(n, None, 3, steps=1), E.ObjectiveError, "layer"),
    ("unit-out-of-range", lambda n, t: invviz.visualize(n, "0", 99, steps=1, size=16, progress=False),
     E.UnitIndexError, "8 channels"),
    ("unit-bool", lambda n, t: channel("0", True), E.ObjectiveError, "int"),
    ("units-empty", lambda n, t: units("0", {}), E.ObjectiveError, "at least one"),
    ("direction-zero", lambda n, t: direction("0", torch.zeros(8)), E.ObjectiveError, "zeros"),
    ("direction-3d", lambda n, t: direction("0", torch.zeros(2, 2, 2)), E.ObjectiveError, "vector"),
    ("objective-div-zero", lambda n, t: channel("0", 0) / 0, E.ObjectiveError, "zero"),
    ("custom-not-callable", lambda n, t: custom("0", 3), E.ObjectiveError, "callable"),
    # parameterizations and transforms
    ("param-unknown", lambda n, t: invviz.visualize(n, "0", 0, param="dct", steps=1), E.ParameterizationError,
     "unknown parameterization"),
    ("transforms-unknown", lambda n, t: invviz.visualize(n, "0", 0, transforms="strong", steps=1),
     E.ParameterizationError, "transforms"),
    ("scales-empty", lambda n, t: RandomScale([]), E.ParameterizationError, "empty"),
    ("angles-not-numbers", lambda n, t: RandomRotate(["a"]), E.ParameterizationError, "list"),
    ("jitter-zero", lambda n, t: Jitter(0), E.ParameterizationError, "d >= 1"),
    ("pad-negative", lambda n, t: Pad(-1), E.ParameterizationError, ">= 0"),
    ("pixel-tiny", lambda n, t: PixelImage(4), E.ParameterizationError, "8 pixels"),
    ("init-maco", lambda n, t: make_param("maco", 16, 1, init=img(1, 3, 16, 16)), E.ParameterizationError, "MaCo"),
    ("init-cppn", lambda n, t: CPPNImage(16, init=img(1, 3, 16, 16)), E.ParameterizationError, "coordinates"),
    ("init-normalized", lambda n, t: make_param("pixel", 16, 1, init=torch.randn(1, 3, 16, 16) * 2),
     E.ImageSizeError, "normalized"),
    ("snapshot-out-of-range", lambda n, t: invviz.visualize(n, "0", 0, steps=2, snapshots=[5], progress=False),
     E.SettingError, "0..2"),
    # devices
    ("device-mismatch", lambda n, t: invviz.visualize(n, "0", 0, device="cuda:3", steps=1), E.DeviceError, "move"),
    ("device-unknown", lambda n, t: invviz.visualize(n, "0", 0, device="gpu7", steps=1), E.DeviceError, "device"),
    ("meta-model", lambda n, t: invviz.visualize(nn.Conv2d(3, 2, 1, device="meta"), "", 0, steps=1),
     E.DeviceError, "meta"),
    # images: NaN, uint8, normalized
    ("nan-image-invert", lambda n, t: invviz.invert(n, img(3, 32, 32, fill=float("nan")), layer="0"),
     E.ImageSizeError, "NaN"),
    ("nan-image-top-units", lambda n, t: invviz.top_units(n, "0", img(3, 32, 32, fill=float("nan"))),
     E.ImageSizeError, "NaN"),
    ("nan-image-recover", lambda n, t: recover_objective(n, "0", img(3, 8, 8, fill=float("nan"))), E.ImageSizeError,
     "NaN"),
    ("uint8-image-invert", lambda n, t: invviz.invert(n, torch.zeros(3, 32, 32, dtype=torch.uint8), layer="0"),
     E.ImageSizeError, "255"),
    ("normalized-image", lambda n, t: invviz.invert(n, torch.randn(3, 32, 32) * 2, layer="0"), E.ImageSizeError,
     "normalized"),
    ("train-uint8", lambda n, t: train_aligned(FeatureAligned(n, "3"), loader(torch.zeros(4, 3, 32, 32,
                                                                                          dtype=torch.uint8)),
                                               progress=False), E.DataError, "uint8"),
    ("train-normalized", lambda n, t: train_aligned(FeatureAligned(n, "3"), loader(torch.randn(4, 3, 32, 32) * 2),
                                                    progress=False), E.DataError, "normalized"),
    ("train-3d-batch", lambda n, t: train_aligned(FeatureAligned(n, "3"), [img(3, 32, 32)], progress=False),
     E.DataError, "(B, C, H, W)"),
    ("train-wrong-size", lambda n, t: train_aligned(FeatureAligned(n, "3"), loader(img(4, 3, 16, 16)),
                                                    progress=False), E.DataError, "px"),
    ("train-generator-3d", lambda n, t: train_generator(gen(), lambda x: x.mean((2, 3)), None, [img(3, 32, 32)],
                                                        progress=False), E.DataError, "(B, C, H, W)"),
    ("train-empty-loader", lambda n, t: fit(lambda b, i: {"loss": 0.0}, [], modules={}, optimizers={},
                                            progress=False), E.DataError, "no batch"),
    # samplers, priors, state dicts
    ("sampler-not-generator", lambda n, t: dgn_am(n, nn.Linear(8, 8), 0, layer="0"), E.ModelTypeError,
     "ImageGenerator"),
    ("ppgn-str-prior", lambda n, t: ppgn_h(n, gen(), "dae", 1), E.ModelTypeError, "prior"),
    ("ppgn-class-by-name", lambda n, t: ppgn_h(n, gen(), lambda h: h, "tabby"), E.UnitIndexError, "by its index"),
    ("ppgn-class-out-of-range", lambda n, t: ppgn_h(n, gen(), lambda h: h, 9, steps=1), E.UnitIndexError, "9"),
    ("dgn-am-bad-init", lambda n, t: dgn_am(n, gen(), channel("0", 0), init=torch.zeros(1, 7)),
     E.ParameterizationError, "codes"),
    ("load-generator-list", lambda n, t: load_generator_state(gen(), [1, 2]), E.ModelTypeError, "state dict"),
    ("load-generator-not-module", lambda n, t: load_generator_state("g", {}), E.ModelTypeError, "generator"),
    ("load-generator-missing-file", lambda n, t: load_generator_state(gen(), t / "none.pt"), E.CheckpointError,
     "no checkpoint"),
    ("dae-1d-codes", lambda n, t: train_code_dae(torch.rand(8)), E.ObjectiveError, "(N >= 2, d)"),
    ("dae-nan-codes", lambda n, t: train_code_dae(torch.full((4, 3), float("nan"))), E.DataError, "finite"),
    ("code-statistics-3d", lambda n, t: code_statistics(lambda x: x, [img(3, 8, 8)]), E.DataError, "(B, C, H, W)"),
    # attribution targets
    ("top-units-target-str", lambda n, t: invviz.top_units(n, "0", img(3, 32, 32), target="cat"), E.UnitIndexError,
     "by name"),
    ("top-units-target-float", lambda n, t: invviz.top_units(n, "0", img(3, 32, 32), target=2.5), E.UnitIndexError,
     "int"),
    ("top-units-target-range", lambda n, t: invviz.top_units(n, "0", img(3, 32, 32), target=50), E.UnitIndexError,
     "outside"),
    ("top-units-k-0", lambda n, t: invviz.top_units(n, "0", img(3, 32, 32), k=0), E.ObjectiveError, "k"),
    ("top-units-method", lambda n, t: invviz.top_units(n, "0", img(3, 32, 32), method="saliency"), E.ObjectiveError,
     "method"),
    # Grad-IFV
    ("ifv-targets-3d", lambda n, t: realize(n, "0", torch.ones(2, 2, 8)), E.ObjectiveError, "targets"),
    ("ifv-targets-str", lambda n, t: realize(n, "0", "abc"), E.ObjectiveError, "targets"),
    ("ifv-batch-param", lambda n, t: recover_objective(n, "0", PixelImage(8, batch=2)), E.ObjectiveError,
     "one realization"),
    ("ifv-int-realization", lambda n, t: recover_objective(n, "0", 3), E.ObjectiveError, "ImageParam"),
    ("ifv-sample-k-1", lambda n, t: sample_targets(1, 3), E.ObjectiveError, "2 features"),
    ("ifv-critical-eps", lambda n, t: critical_space([object()], 2.0), E.ObjectiveError, "eps"),
    ("ifv-critical-empty", lambda n, t: critical_space([], 0.1), E.ObjectiveError, "at least one"),
    ("ifv-match-channel", lambda n, t: match(n, "0", 99, n, "0", size=16), E.ObjectiveError, "out of range"),
    ("ifv-reoptimize-zero-steps", lambda n, t: reoptimize(n, "0", PixelImage(8), torch.ones(1, 8), steps=0),
     E.SettingError, "steps"),
    # feature alignment settings
    ("fa-preserve", lambda n, t: FeatureAligned(n, "3", preserve="exact"), E.SettingError, "preserve"),
    ("fa-trainable", lambda n, t: FeatureAligned(n, "3", trainable="some"), E.SettingError, "trainable"),
    ("fa-layer-unknown", lambda n, t: FeatureAligned(n, "9"), E.LayerNotFoundError, "no layer"),
    ("fa-projection-not-affine", lambda n, t: FeatureAligned(n, "1", preserve="projection"), E.SettingError,
     "affinely"),
    ("fa-zero-steps", lambda n, t: FeatureAligned(n, "3", steps=0), E.ObjectiveError, "T >= 1"),
    ("fa-not-wrapper", lambda n, t: train_aligned(n, [img(2, 3, 32, 32)]), E.ModelTypeError, "FeatureAligned(model)"),
    ("fa-load-missing", lambda n, t: FeatureAligned(n, "3").load(t / "none.pt"), E.CheckpointError, "no checkpoint"),
    # loading, data helpers, metrics
    ("load-model-unknown", lambda n, t: load_model("resnet_9000", pretrained=False), E.ModelNotFoundError,
     "Did you mean"),
    ("load-model-not-str", lambda n, t: load_model(18), E.ModelNotFoundError, "string"),
    ("load-model-bad-kwarg", lambda n, t: load_model("resnet18", pretrained=False, bogus=1), E.SettingError,
     "bogus"),
    ("load-model-bad-source", lambda n, t: load_model("hub/resnet18"), E.ModelNotFoundError, "source"),
    ("photo-unknown", lambda n, t: load_photo("tabby"), E.DatasetNotFoundError, "available"),
    ("image-file-missing", lambda n, t: load_image(t / "none.png"), E.DatasetNotFoundError, "no image file"),
    ("fashion-split", lambda n, t: fashion_mnist("validation"), E.SettingError, "split"),
    ("image-folder-missing", lambda n, t: image_folder(t / "none", size=32), E.DatasetNotFoundError, "folder"),
    ("image-folder-empty", lambda n, t: image_folder(t, size=32), E.DatasetNotFoundError, "no image files"),
    ("psnr-shapes", lambda n, t: invviz.metrics.psnr(img(3, 8, 8), img(3, 8, 9)), E.ImageSizeError, "same shape"),
    ("list-layers-str", lambda n, t: list_layers("resnet18"), E.ModelTypeError, "load_model"),
    ("list-layers-size-word", lambda n, t: list_layers(n, size="big"), E.SettingError, "size"),
    ("probe-layout-unknown", lambda n, t: Probe(n, ["0"], layouts={"0": "HWC"})(img(1, 3, 32, 32)), E.LayoutError,
     "NCHW"),
    ("checkpoint-empty-file", lambda n, t: invviz.io.load_checkpoint_state(empty_file(t)), E.CheckpointError,
     "empty"),
    ("list-layers-too-small", lambda n, t: list_layers(nn.Sequential(n, nn.Unflatten(1, (5, 1, 1)),
                                                                      nn.Conv2d(5, 2, 3)), size=8),
     E.ImageSizeError, "native size"),
    ("save-image-bad-suffix", lambda n, t: invviz.plotting.save_grid(img(1, 3, 8, 8), t / "x.txt"),
     E.OutputPathError, ".png"),
    ("capture-str-model", lambda n, t: invviz.Capture("resnet18", ["layer1"]), E.ModelTypeError, "load_model"),
    ("capture-run-outside-with", lambda n, t: invviz.Capture(n, ["0"]).run(img(1, 3, 8, 8)), E.SettingError,
     "with Capture"),
    ("capture-grey-into-rgb", lambda n, t: _capture_run(n, img(1, 1, 8, 8)), E.ImageSizeError, "channels"),
    ("critical-spaces-tensor", lambda n, t: invviz.ifv.critical_spaces(torch.rand(3, 4)), E.ObjectiveError,
     "recover_objective"),
    ("concepts-k-zero", lambda n, t: invviz.concepts(n, "2", img(2, 3, 32, 32), 0), E.SettingError, "k"),
    ("concepts-no-images", lambda n, t: invviz.concepts(n, "2", img(0, 3, 32, 32), 2), E.DataError, "no images"),
    ("concepts-bad-layer", lambda n, t: invviz.concepts(n, "nope", img(2, 3, 32, 32), 2), E.LayerNotFoundError,
     "nope"),
    ("concepts-nmf-negative", lambda n, t: invviz.concepts(n, "1", img(4, 3, 32, 32), 2), E.ObjectiveError,
     "method='sae'"),
    ("as-probe-options-beside-probe", lambda n, t: invviz.visualize(Probe(n), "0", 0, preprocessing=PREP),
     E.SettingError, "belong to the Probe"),
    ("visualize-unknown-recipe", lambda n, t: invviz.visualize(n, "0", 0, recipe="turbo"), E.SettingError, "recipe"),
]


def _capture_run(net, x):
    with invviz.Capture(net, ["0"]) as cap:
        return cap.run(x)


@pytest.mark.parametrize("name, call, error, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_typed_error_and_the_model_is_untouched(name, call, error, fragment, tmp_path):
    net = model()
    flags = flags_of(net)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(error) as caught:
        call(net, tmp_path)
    assert isinstance(caught.value, E.InvvizError)
    assert fragment.lower() in str(caught.value).lower(), str(caught.value)
    assert hooks_on(net) == 0 and flags_of(net) == flags
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


def test_the_table_is_large():
    assert len(CASES) >= 80


def test_an_image_only_objective_renders_without_the_model():
    from invviz.optvis import IMAGE, total_variation

    net = model()
    r = invviz.visualize(net, None, total_variation(), steps=3, size=16, progress=False)
    assert r.history.shape == (3, 1) and hooks_on(net) == 0
    r = invviz.visualize(net, None, custom(IMAGE, lambda x: x.mean(dim=(1, 2, 3))), steps=2, size=16,
                         progress=False)
    assert r.final.shape == (1,)


def test_snapshot_zero_is_the_initial_image():
    r = invviz.visualize(model(), "0", 0, steps=2, size=16, snapshots=[0, 2], progress=False, param="pixel")
    assert set(r.snapshots) == {0, 2} and not torch.equal(r.snapshots[0], r.snapshots[2])
    start = PixelImage(16, rng=torch.Generator().manual_seed(0))()
    assert torch.allclose(r.snapshots[0], start.detach())


def test_nan_objective_does_not_say_lower_the_learning_rate_for_nan_input():
    net = model()
    with pytest.raises(E.ImageSizeError, match="NaN"):
        invviz.top_units(net, "0", torch.full((3, 32, 32), math.nan))


def test_malicious_and_truncated_checkpoints_are_checkpoint_errors(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"modules": Evil(), "step": 0}))
    with pytest.raises(E.CheckpointError, match="code"):
        invviz.io.load_checkpoint_state(bad)
    good = tmp_path / "good.pt"
    invviz.io.save_checkpoint(good, {"modules": {"m": {"w": torch.ones(3)}}, "step": 1})
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:100])
    with pytest.raises(E.CheckpointError, match="truncated"):
        invviz.io.load_checkpoint_state(tmp_path / "cut.pt")
