"""Time the full L x L STIR matrices of a model pair: pair-by-pair inversions vs shared inversions.

(a) pairwise: as the authors' published scripts do, every (reference layer i, target
    layer j) pair runs its own inversion of the n images through layer i of the
    reference model, then one CKA at layer j of the target; both directions. Their
    scripts read layer i from a full forward pass of the model (``--baseline-forward
    full``, the default); ``truncated`` gives the baseline this library's early exit too,
    isolating the gain from sharing and batching inversions.
(b) shared: this library, one batched inversion per model and seed covering all its
    layers, then every STIR and CKA from once-computed Gram matrices.

Both use the same recipe, so with the same seed their matrices agree up to float rounding; the seed-to-seed spread (seeds 0 and 1 of (b)) is
printed beside the difference for scale. The last line is ``speedup: <a/b>``.

Default: two tiny ViTs (depth 6, 7 layers) on 32 px images, a few minutes on one CPU
thread. Paper scale on a GPU:
    python benchmarks/stir_pairwise_vs_shared.py --model vit_base_patch32_224 \
        --image-size 224 --n 500 --iterations 500 --device cuda
"""

from __future__ import annotations

import argparse

import numpy as np
import timm
import torch
from devices import measured_matmul_peak, timed_call
from torch.utils.flop_counter import FlopCounterMode

from finetune_invariance.cka import linear_cka
from finetune_invariance.inversion import invert
from finetune_invariance.layers import LayeredModel, ViTLayers
from finetune_invariance.stir import pair_similarity

TINY = "tiny"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model pair's arguments (:func:`build_pair`) and the images' number and size."""
    parser.add_argument("--model", default=TINY, help=f"timm model name, or '{TINY}' (vit_tiny, patch 8, width 64)")
    parser.add_argument(
        "--depth", type=int, default=None, help="transformer blocks (default: 6 for tiny, else the model's)"
    )
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--n", type=int, default=16, help="number of images")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument(
        "--baseline-forward",
        choices=("full", "truncated"),
        default="full",
        help="forward pass of the pairwise baseline: full model (the authors' scripts) or early exit",
    )
    return parser.parse_args()


def build_pair(args: argparse.Namespace) -> tuple[ViTLayers, ViTLayers]:
    """A random 'pretrained' ViT and a 'finetuned' copy with every weight perturbed by 5%."""
    if args.model == TINY:
        kwargs = dict(patch_size=8, embed_dim=64, num_heads=2, depth=args.depth or 6)
        name = "vit_tiny_patch16_224"
    else:
        kwargs = {"depth": args.depth} if args.depth else {}
        name = args.model
    torch.manual_seed(0)
    pretrained = timm.create_model(name, img_size=args.image_size, num_classes=0, **kwargs)
    finetuned = timm.create_model(name, img_size=args.image_size, num_classes=0, **kwargs)
    finetuned.load_state_dict(pretrained.state_dict())
    with torch.no_grad():
        for p in finetuned.parameters():
            p.add_(0.05 * p.std().nan_to_num(0.0) * torch.randn_like(p))
    return (ViTLayers(pretrained).to(args.device).eval(), ViTLayers(finetuned).to(args.device).eval())


class FullForwardViTLayers(ViTLayers):
    """Reads any layer from a forward pass through the whole model, as the authors' scripts do."""

    def _forward(self, images: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        return super()._forward(images, [*layers, self.depth])[: len(layers)]

    representations_per_sample = LayeredModel.representations_per_sample


def pairwise_matrices(p: ViTLayers, f: ViTLayers, images: torch.Tensor, seed: int, iterations: int) -> dict:
    """(a): a fresh inversion for every (i, j) pair, STIR(m2_j | m1_i) = CKA(m2_j(X), m2_j(X'))."""
    matrices = {}
    for name, m1, m2 in (("p->f", p, f), ("f->p", f, p)):
        size = m1.num_layers
        matrix = np.zeros((size, m2.num_layers))
        for i in range(size):
            for j in range(m2.num_layers):
                x_prime = invert(m1, images, [i], seed=seed, iterations=iterations, progress=False).images[0]
                with torch.no_grad():
                    (rep_x,) = m2.representations(images, [j])
                    (rep_x_prime,) = m2.representations(x_prime, [j])
                matrix[i, j] = linear_cka(rep_x, rep_x_prime)
        matrices[name] = matrix
    return matrices


def shared_matrices(p: ViTLayers, f: ViTLayers, images: torch.Tensor, seed: int, iterations: int) -> tuple[dict, float]:
    """(b): one batched inversion per model, then pair_similarity. Also returns the inversion time."""
    (inv_p, inv_f), inversion_seconds = timed_call(
        lambda: (
            invert(p, images, seed=seed, iterations=iterations, progress=False),
            invert(f, images, seed=seed, iterations=iterations, progress=False),
        ),
        images.device,
    )
    df = pair_similarity(p, f, images, inv_p, inv_f, names=("p", "f"))
    matrices = {
        f"{a}->{b}": df[df["reference"] == a]
        .pivot(index="reference_layer", columns="target_layer", values="stir")
        .to_numpy()
        for a, b in (("p", "f"), ("f", "p"))
    }
    return matrices, inversion_seconds


def flops_per_step(model: ViTLayers, images: torch.Tensor, layers: list[int] | None = None) -> int:
    """FLOPs of one inversion step (forward + backward) through ``layers`` (default: all, batched).

    Counted as the difference between 2 and 1 iterations, so setup work cancels.
    """

    def count(iterations: int) -> int:
        with FlopCounterMode(display=False) as counter:
            invert(model, images, layers, seed=0, iterations=iterations, progress=False)
        return counter.get_total_flops()

    return count(2) - count(1)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    p, f = build_pair(args)
    images = torch.rand(args.n, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0))
    images = images.to(args.device)
    print(
        f"model {args.model}, {p.num_layers} layers, n={args.n}, iterations={args.iterations}, "
        f"device {args.device}, {torch.get_num_threads()} CPU threads"
    )

    (shared, inversion_seconds), shared_seconds = timed_call(
        lambda: shared_matrices(p, f, images, seed=0, iterations=args.iterations), torch.device(args.device)
    )
    print(f"(b) shared inversions (this library): {shared_seconds:.2f} s ({inversion_seconds:.2f} s inverting)")
    baseline_p, baseline_f = (p, f)
    if args.baseline_forward == "full":
        baseline_p, baseline_f = (FullForwardViTLayers(m.vit, m.normalization) for m in (p, f))
    pairwise, pairwise_seconds = timed_call(
        lambda: pairwise_matrices(baseline_p, baseline_f, images, 0, args.iterations), torch.device(args.device)
    )
    print(
        f"(a) pair-by-pair inversions ({2 * p.num_layers ** 2} of them, {args.baseline_forward} forward): "
        f"{pairwise_seconds:.2f} s"
    )

    other_seed, _ = shared_matrices(p, f, images, seed=1, iterations=args.iterations)
    difference = max(np.abs(pairwise[k] - shared[k]).max() for k in shared)
    spread = max(np.abs(other_seed[k] - shared[k]).max() for k in shared)
    print(f"max |STIR(a) - STIR(b)| = {difference:.2e}; seed-to-seed spread (seeds 0, 1 of (b)) = {spread:.2e}")

    step_flops = flops_per_step(p, images) + flops_per_step(f, images)
    achieved = step_flops * args.iterations / inversion_seconds
    print(
        f"inversion: {step_flops / 2:.3g} FLOPs per model step (matmul/conv/attention only), "
        f"achieved {achieved / 1e9:.2f} GFLOP/s vs measured float32 matmul {measured_matmul_peak(torch.device(args.device), torch.float32) / 1e9:.2f} GFLOP/s"
    )
    if args.baseline_forward == "truncated":
        # (a) runs every single-layer inversion once per target layer j; (b) runs all layers once.
        # (torch's FLOP counter cannot follow the unused tail of the full-forward baseline's graph.)
        pairwise_flops = sum(
            m2.num_layers * flops_per_step(m1, images, [i]) for m1, m2 in ((p, f), (f, p)) for i in range(m1.num_layers)
        )
        print(f"inversion FLOP ratio (a)/(b): {pairwise_flops / step_flops:.1f} (the rest of the speedup is batching)")
    print(f"speedup: {pairwise_seconds / shared_seconds:.1f}")


if __name__ == "__main__":
    main()
