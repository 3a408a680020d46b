"""The peers' checkpoint converter, on checkpoints written here by a reference network built from
the description in peers.md (the peers' code itself is not used)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coral_ft.checkpoint.model import load_head, load_model
from coral_ft.errors import UserError
from coral_ft.finetune.export import write_converted
from coral_ft.models.convert_peer import convert_peer_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from peer_unet import PeerUNet  # noqa: E402  (the reference network, written from the peers' description)

T = 50  # timesteps of the reference table (the peers use 1000; the layout is the same)
MULT, ATTN = (1, 2), (1,)  # PeerUNet's defaults


def write_peer_checkpoint(path, net, ema, size=16):
    torch.save(
        {"net_model": net.state_dict(), "ema_model": ema.state_dict(), "optim": {}, "step": 10, "fixed_x_T": torch.randn(4, 3, size, size)},
        path,
    )


@pytest.mark.parametrize("num_classes", [5, None], ids=["conditional", "unconditional"])
def test_converted_model_matches_the_reference(tmp_path, num_classes):
    torch.manual_seed(0)
    net, ema = PeerUNet(num_classes, coral_head=True).eval(), PeerUNet(num_classes, coral_head=True).eval()
    write_peer_checkpoint(tmp_path / "ckpt_10.pt", net, ema)
    x, t = torch.randn(3, 3, 16, 16), torch.tensor([0, 17, T - 1])
    for weights, ref in (("ema", ema), ("raw", net)):
        unet, head, layout = convert_peer_checkpoint(tmp_path / "ckpt_10.pt", weights)
        assert layout.ch_mult == MULT and layout.attn_levels == ATTN and layout.num_timesteps == T
        assert unet.config.sample_size == 16  # read from fixed_x_T
        with torch.no_grad():
            if num_classes:
                y = torch.tensor([0, 2, 4])
                assert (unet(x, t, class_labels=y).sample - ref(x, t, y)).abs().max() < 1e-4
                null = torch.full((3,), num_classes)  # the appended zero row = the peers' label-free pass
                assert (unet(x, t, class_labels=null).sample - ref(x, t)).abs().max() < 1e-4
            else:
                assert unet.config.num_class_embeds is None
                assert (unet(x, t).sample - ref(x, t)).abs().max() < 1e-4
            labels = y if num_classes else None
            ref(x, t, labels)
            z_ref = F.normalize(ref.mean_proj(ref.bottleneck.mean(dim=(2, 3))), dim=1)
            captured = {}
            hook = unet.mid_block.register_forward_hook(lambda m, i, o, store=captured: store.setdefault("h", o))
            unet(x, t, class_labels=labels)
            hook.remove()
            assert (head(captured["h"]) - z_ref).abs().max() < 1e-5


def test_written_folder_loads_with_diffusers_and_coral_ft(tmp_path):
    torch.manual_seed(1)
    net = PeerUNet(4, coral_head=True).eval()
    write_peer_checkpoint(tmp_path / "ckpt.pt", net, net)
    unet, head, layout = convert_peer_checkpoint(tmp_path / "ckpt.pt")
    write_converted(tmp_path / "out", unet, head, layout, "ckpt.pt")
    loaded, scheduler, info = load_model(tmp_path / "out")
    assert scheduler.config.num_train_timesteps == T and info.num_classes == 4
    assert load_head(tmp_path / "out" / "head") is not None
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([3, 30]), torch.tensor([1, 3])
    with torch.no_grad():
        assert (loaded(x, t, class_labels=y).sample - net(x, t, y)).abs().max() < 1e-4


def test_bad_checkpoints_are_clear_errors(tmp_path):
    torch.manual_seed(2)
    net = PeerUNet(3)
    good = tmp_path / "good.pt"
    write_peer_checkpoint(good, net, net)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        convert_peer_checkpoint(truncated)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="not a readable"):
        convert_peer_checkpoint(junk)
    pickled_code = tmp_path / "code.pt"
    torch.save({"ema_model": {}, "sched": nn.Identity()}, pickled_code)
    with pytest.raises(UserError, match="pickled code"):
        convert_peer_checkpoint(pickled_code)
    other = tmp_path / "other.pt"
    torch.save({"model": net.state_dict()}, other)
    with pytest.raises(UserError, match="no 'ema_model'"):
        convert_peer_checkpoint(other)
    with pytest.raises(UserError, match="not found"):
        convert_peer_checkpoint(tmp_path / "missing.pt")
    state = net.state_dict()
    state.pop("middleblocks.1.block2.3.weight")
    torch.save({"ema_model": state, "fixed_x_T": torch.zeros(1, 3, 16, 16)}, other)
    with pytest.raises(UserError, match="does not match the peers' U-Net layout"):
        convert_peer_checkpoint(other)


def test_convert_command_writes_a_base_for_finetune(tmp_path, capsys):
    from coral_ft.cli.app import main
    from coral_ft.config import FinetuneConfig
    from coral_ft.data.registry import LabeledImages
    from coral_ft.finetune.source import FinetuneSource

    torch.manual_seed(3)
    net = PeerUNet(4, coral_head=True).eval()
    write_peer_checkpoint(tmp_path / "ckpt.pt", PeerUNet(4), net)
    main(["convert", "--from", "ddpm-cifar", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "conv"), "--ema"])
    assert "with the CORAL head" in capsys.readouterr().out
    data = LabeledImages(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.arange(4), list("abcd"))
    unet = FinetuneSource(FinetuneConfig(base=str(tmp_path / "conv"), lora=True)).build(data, None).eval()
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([5, 40]), torch.tensor([1, 3])
    with torch.no_grad():  # fresh adapters (B = 0): still the peers' network
        assert (unet(x, t, class_labels=y).sample - net(x, t, y)).abs().max() < 1e-4


def test_finetune_takes_a_peers_checkpoint_directly(tmp_path):
    from coral_ft.checkpoint.model import ModelInfo
    from coral_ft.config import FinetuneConfig
    from coral_ft.data.registry import LabeledImages
    from coral_ft.finetune.source import FinetuneSource
    from coral_ft.models.schedule import make_scheduler

    torch.manual_seed(4)
    net = PeerUNet(4).eval()
    write_peer_checkpoint(tmp_path / "ckpt_2000.pt", PeerUNet(4), net)
    data = LabeledImages(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.arange(4), list("abcd"))
    source = FinetuneSource(FinetuneConfig(base=str(tmp_path / "ckpt_2000.pt"), lora=True))
    unet = source.build(data, None).eval()
    x, t, y = torch.randn(2, 3, 16, 16), torch.tensor([5, 40]), torch.tensor([1, 3])
    with torch.no_grad():  # converted on the fly, EMA weights, exactly as `coral-ft convert`
        assert (unet(x, t, class_labels=y).sample - net(x, t, y)).abs().max() < 1e-4
    assert source.scheduler(None).config.num_train_timesteps == T
    source.save(unet, tmp_path / "model", make_scheduler(T), ModelInfo(class_names=list("abcd")))
    loaded, _, _ = load_model(tmp_path / "model")  # the adapters find their base: the .pt, converted again
    with torch.no_grad():
        assert (loaded(x, t, class_labels=y).sample - net(x, t, y)).abs().max() < 1e-4


def test_a_base_of_no_known_form_lists_the_accepted_forms(tmp_path, capsys):
    from coral_ft.cli.app import main

    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "--base", str(tmp_path / "weights.bin"), "--out", str(tmp_path / "r"), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "ckpt_*.pt" in err and "hub ID" in err and "coral-ft run directory" in err
