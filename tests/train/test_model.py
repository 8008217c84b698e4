"""The HAC network on real tensors: shapes, attention maths (eq. 2–6), gradients, determinism."""
import pytest
import torch
import torchvision

from hac_runtime.errors import HacError
from hac_train.model import (BACKBONES, HACConfig, HACNet, SelfAttention, SpatialAttention, count_parameters,
                             log_sigmoid)

CONFIGS = [
    dict(attention="hybrid", temporal="gru"),
    dict(attention="self", temporal="gru"),
    dict(attention="none", temporal="gru"),
    dict(attention="hybrid", temporal="none"),
    dict(attention="self", temporal="none"),
    dict(attention="none", temporal="none"),
]


def tiny(k=5, **kw):
    torch.manual_seed(0)
    model = HACNet(HACConfig(backbone="resnet18", num_classes=7, k=k, **kw)).eval()
    randomize_attention(model)
    return model


def randomize_attention(module):
    """Attention blocks start at uniform weights (zero init); give them random ones so the maths shows."""
    for m in module.modules():
        if isinstance(m, SelfAttention):
            torch.nn.init.normal_(m.theta.weight, std=0.05)
        elif isinstance(m, SpatialAttention):
            torch.nn.init.normal_(m.conv.weight, std=0.5)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['attention']}-{c['temporal']}")
@pytest.mark.parametrize("k", [1, 3, 5])
def test_output_shape_every_config(cfg, k):
    model = tiny(k=k, **cfg)
    x = torch.randn(2, k, 3, 64, 64)
    with torch.inference_mode():
        logits, attn = model(x, return_attention=True)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    if cfg["attention"] == "none":
        assert attn == {}
    else:
        assert attn["self"].shape == (2, k)
    if cfg["attention"] == "hybrid":
        assert attn["spatial"].shape == (2, k, 2, 2)  # 64 px / 32


def test_eager_accepts_any_k_regardless_of_config():
    model = tiny(k=5)
    with torch.inference_mode():
        assert model(torch.randn(1, 2, 3, 64, 64)).shape == (1, 7)


def test_self_attention_is_convex_combination():
    torch.manual_seed(1)
    att = SelfAttention(16)
    t = torch.randn(3, 4, 16) * 5
    alpha0, _ = att(t)
    assert torch.all(alpha0 == 0.5)  # zero init: uniform weights
    torch.nn.init.normal_(att.theta.weight, std=0.3)
    alpha, fused = att(t)
    assert ((alpha > 0) & (alpha < 1)).all() and alpha.std() > 0.05
    w = alpha / alpha.sum(1, keepdim=True)
    torch.testing.assert_close(fused, (w.unsqueeze(-1) * t).sum(1))
    # a convex combination stays inside the per-dimension range of the frames
    assert (fused <= t.max(1).values + 1e-5).all() and (fused >= t.min(1).values - 1e-5).all()
    # eq. 2 is sigmoid(theta . T)
    torch.testing.assert_close(alpha, torch.sigmoid(t @ att.theta.weight.T + att.theta.bias).squeeze(-1))


def test_spatial_attention_is_convex_combination_over_locations():
    torch.manual_seed(2)
    att = SpatialAttention()
    torch.nn.init.normal_(att.conv.weight, std=0.5)
    f = torch.randn(6, 8, 5, 5) * 3
    omega, fused = att(f)
    assert omega.shape == (6, 5, 5)
    assert ((omega > 0) & (omega < 1)).all() and omega.std() > 0.05
    w = omega / omega.sum((1, 2), keepdim=True)
    torch.testing.assert_close(fused, (w.unsqueeze(1) * f).sum((2, 3)))
    flat = f.flatten(2)
    assert (fused <= flat.max(2).values + 1e-5).all() and (fused >= flat.min(2).values - 1e-5).all()
    # eq. 5: the weights come from a 3x3 conv (padding 1) over the channel mean
    expected = torch.sigmoid(att.conv(f.mean(1, keepdim=True))).squeeze(1)
    torch.testing.assert_close(omega, expected)


def test_hybrid_sequence_follows_equations_2_to_6():
    model = tiny(k=3)
    x = torch.randn(2, 3, 3, 96, 96)
    with torch.inference_mode():
        seq, attn = model.sequence(x)
        maps = model.trunk(x.flatten(0, 1))  # (6, 512, 3, 3)
    t = maps.mean((2, 3)).view(2, 3, -1)
    alpha = attn["self"]
    assert alpha.std() > 0.01 and attn["spatial"].std() > 0.01
    clip = (alpha.unsqueeze(-1) * t).sum(1) / alpha.sum(1, keepdim=True)  # eq. 3
    context = clip.repeat_interleave(3, dim=0)[:, :, None, None].expand(-1, -1, 3, 3)
    f_att1 = torch.cat([maps, context], dim=1)  # eq. 4
    omega = attn["spatial"].flatten(0, 1).unsqueeze(1)
    f_att2 = (omega * f_att1).sum((2, 3)) / omega.sum((2, 3))  # eq. 6
    assert seq.shape == (2, 3, 1024)
    torch.testing.assert_close(seq, f_att2.view(2, 3, -1), rtol=1e-4, atol=1e-5)
    # the clip context half of every frame's feature is the same convex combination of frame features
    torch.testing.assert_close(seq[:, 0, 512:], clip, rtol=1e-4, atol=1e-5)


def test_gradients_reach_every_block():
    model = tiny(k=3).train()
    x = torch.randn(2, 3, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 4]))
    loss.backward()
    blocks = {
        "backbone": model.trunk[0].weight,
        "backbone_last": model.trunk[-1][-1].conv2.weight,
        "self_attention": model.self_attention.theta.weight,
        "spatial_attention": model.spatial_attention.conv.weight,
        "gru": model.gru.weight_ih_l0,
        "fc": model.fc.weight,
    }
    for name, p in blocks.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_seed_same_logits():
    x = torch.randn(2, 5, 3, 64, 64)
    a, b = tiny(), tiny()
    with torch.inference_mode():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    torch.manual_seed(123)
    c = HACNet(HACConfig(backbone="resnet18")).eval()
    randomize_attention(c)
    with torch.inference_mode():
        assert not torch.equal(a(x), c(x))


def test_bad_config_is_a_clear_error():
    with pytest.raises(HacError, match="unknown backbone 'resnet99'"):
        HACConfig(backbone="resnet99")
    with pytest.raises(HacError, match="unknown attention"):
        HACConfig(attention="cross")
    with pytest.raises(HacError, match="unknown temporal"):
        HACConfig(temporal="lstm")


def test_pretrained_from_local_file(tmp_path):
    torch.manual_seed(5)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    model = HACNet(HACConfig(backbone="resnet18"), pretrained=str(path))
    torch.testing.assert_close(model.trunk[0].weight, ref.conv1.weight)
    torch.testing.assert_close(model.trunk[-1][1].bn2.running_var, ref.layer4[1].bn2.running_var)
    with pytest.raises(HacError, match="not found"):
        HACNet(HACConfig(backbone="resnet18"), pretrained=str(tmp_path / "nope.pth"))
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(HacError, match="does not match resnet18"):
        HACNet(HACConfig(backbone="resnet18"), pretrained=str(tmp_path / "r34.pth"))


def test_resnet50_parameter_count():
    model = HACNet(HACConfig(backbone="resnet50", num_classes=7))
    ref = torchvision.models.resnet50(weights=None)
    trunk = count_parameters(ref) - count_parameters(ref.fc)
    d = 2 * BACKBONES["resnet50"]
    gru = 3 * (d * 128 + 128 * 128 + 2 * 128)
    expected = trunk + (2048 + 1) + (9 + 1) + gru + (128 * 7 + 7)
    n = count_parameters(model)
    print(f"HAC ResNet50 (hybrid, GRU 128, 7 classes): {n:,} parameters")
    assert n == expected
    assert 25_000_000 < n < 25_500_000


def test_log_sigmoid_is_finite_and_exact():
    z = torch.tensor([-1e4, -200.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4])
    expected = torch.nn.functional.logsigmoid(z.double()).float()
    torch.testing.assert_close(log_sigmoid(z), expected, atol=1e-6, rtol=1e-6)
    assert torch.isfinite(log_sigmoid(z)).all()


def test_log_space_weights_equal_the_sigmoid_ratio_where_it_is_well_conditioned():
    """Old checkpoints load unchanged (same parameters) and give the same logits as the ratio form did."""
    from fixtures_model import ratio_forms

    model = tiny(k=5)
    x = torch.randn(3, 5, 3, 64, 64)
    with torch.no_grad():
        new, attn = model(x, return_attention=True)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        old, old_attn = ratio_forms(model)(x, return_attention=True)
    assert {k for k in state if "attention" in k} == {"self_attention.theta.weight", "self_attention.theta.bias",
                                                      "spatial_attention.conv.weight", "spatial_attention.conv.bias"}
    torch.testing.assert_close(new, old, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn["self"], old_attn["self"])  # α and ω themselves are unchanged
    torch.testing.assert_close(attn["spatial"], old_attn["spatial"])


def test_saturated_attention_matches_float64():
    """Every α ~ 1e-11 (biases far negative): the normalised weights still equal the float64 ratio."""
    sa = SelfAttention(8)
    with torch.no_grad():
        sa.theta.weight.normal_(std=0.5)
        sa.theta.bias.fill_(-25.0)
    t = torch.randn(4, 5, 8)
    alpha, fused = sa(t)
    assert alpha.max() < 1e-9
    a64 = torch.sigmoid(sa.theta(t).double()).squeeze(-1)
    expected = (a64.unsqueeze(-1) * t.double()).sum(1) / a64.sum(1, keepdim=True)
    torch.testing.assert_close(fused.double(), expected, atol=1e-5, rtol=1e-5)
