"""coral-ft's `ddpm-cifar` U-Net (diffusers UNet2DModel) against the peers' U-Net written from
their description (peer_unet.py): one forward + backward of the eps-MSE, same batch, interleaved
(ours, peers', ours, ...), medians. Target: ours at most the peers' time.

    python benchmarks/unet_step_cost.py --batch-size 8 --steps 6 --threads 2      # CPU
    python benchmarks/unet_step_cost.py --batch-size 128 --steps 20 --device cuda  # GPU (fp32 and bf16)
"""

from __future__ import annotations

import argparse

import torch
from common import device_name, interleaved_medians
from peer_unet import PeerUNet

from coral_ft.models.presets import build_unet


def step_fn(model, x, t, y, noise, peers: bool, dtype):
    def step():
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            out = model(x, t, y) if peers else model(x, t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(out.float(), noise)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    ours = build_unet("ddpm-cifar", 32, 3, 10).to(device).train()
    peers = PeerUNet(10, ch=128, mult=(1, 2, 2, 2), attn=(1,), nrb=2, T=1000, random_norms=False).to(device).train()
    n_ours, n_peers = (sum(p.numel() for p in m.parameters() if p.requires_grad) for m in (ours, peers))
    g = torch.Generator().manual_seed(1)
    B = args.batch_size
    x, noise = (torch.randn(B, 3, 32, 32, generator=g).to(device) for _ in range(2))
    t, y = torch.randint(0, 1000, (B,), generator=g).to(device), torch.randint(0, 10, (B,), generator=g).to(device)
    precisions = {"fp32": None} | ({"bf16": torch.bfloat16} if device.type == "cuda" else {})
    where = device_name()
    print(f"batch {B}, {args.steps} timed steps each, {where}; parameters: ours {n_ours / 1e6:.2f}M, peers' {n_peers / 1e6:.2f}M")
    for name, dtype in precisions.items():
        fns = {"ours": step_fn(ours, x, t, y, noise, False, dtype), "peers": step_fn(peers, x, t, y, noise, True, dtype)}
        med = interleaved_medians(fns, args.steps, args.warmup)
        print(f"  {name}: ours {med['ours'] * 1000:.1f} ms, peers' {med['peers'] * 1000:.1f} ms, "
              f"ours/peers' {med['ours'] / med['peers']:.3f} (target <= 1.0)")


if __name__ == "__main__":
    main()
