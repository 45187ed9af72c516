"""Hand-written modules in the styles of torchvision and timm (which cannot be installed beside our torch),
plus tiny ``transformers`` configs: the test bed of recorded ParameterGraphs and symmetries of any module.

Each entry builds a small, randomly initialised module and an example input. BatchNorm running statistics
are randomised so eval-mode outputs depend on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class TwoLayerMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class PlainParamMLP(nn.Module):
    """Weights as plain parameters used with ``@`` and ``F.linear`` (no nn.Linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(5, 12) * 0.3)  # used as x @ w1
        self.b1 = nn.Parameter(torch.randn(12) * 0.1)
        self.w2 = nn.Parameter(torch.randn(4, 12) * 0.3)  # used as F.linear(h, w2)
        self.scale = nn.Parameter(torch.rand(12) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(x @ self.w1 + self.b1) * self.scale
        return F.linear(h, self.w2)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + idt)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv2, self.bn2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += self.downsample(x)
        return self.relu(out)


class TinyResNet(nn.Module):
    """torchvision ResNet style: stem, basic blocks, a bottleneck, global pooling, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 12, stride=2))
        self.layer2 = Bottleneck(12, 6, 16)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.norm2, self.conv2 = nn.BatchNorm2d(2 * growth), nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(feats, 1)
        x = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(x)))


class TinyDenseNet(nn.Module):
    """torchvision DenseNet style: a dense block concatenating every layer's features, a transition."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.layers = nn.ModuleList([DenseLayer(6 + 4 * i, 4) for i in range(3)])
        self.norm5 = nn.BatchNorm2d(18)
        self.transition = nn.Conv2d(18, 8, 1, bias=False)
        self.classifier = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.conv0(x)]
        for layer in self.layers:
            feats.append(layer(feats))
        x = F.relu(self.norm5(torch.cat(feats, 1)))
        x = F.avg_pool2d(self.transition(x), 2)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Inception(nn.Module):
    """GoogLeNet style: four branches concatenated along the channels."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(8, 3, 1), nn.ReLU(), nn.Conv2d(3, 5, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(8, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(8, 2, 1))
        self.head = nn.Linear(14, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        y = torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)
        return self.head(F.relu(y).mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, max(c // r, 1), 1), nn.Conv2d(max(c // r, 1), c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 style: expand 1×1, depthwise 3×3, (SE), project 1×1, residual when shapes match."""

    def __init__(self, c: int, expand: int, se: bool) -> None:
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.Hardswish())
        self.se = SqueezeExcite(h) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.se(self.dw(self.expand(x))))


class TinyMobileNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8, 3, se=False), InvertedResidual(8, 2, se=True))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt style: depthwise 7×7, channels-last LayerNorm, inverted MLP, layer scale, residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1, self.pwconv2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.rand(c) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class TinyConvNeXt(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2, stride=2)
        self.blocks = nn.Sequential(ConvNeXtBlock(8), ConvNeXtBlock(8))
        self.norm, self.head = nn.LayerNorm(8), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.stem(x)).mean((-2, -1))))


class Attention(nn.Module):
    """timm ViT attention: fused qkv, reshape to (3, heads, head_dim), scaled dot product, projection."""

    def __init__(self, dim: int, heads: int, rel_pos: int = 0) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.rel = nn.Parameter(torch.randn(2 * rel_pos - 1, heads) * 0.1) if rel_pos else None
        if rel_pos:
            idx = torch.arange(rel_pos)
            self.register_buffer("rel_index", (idx[:, None] - idx[None, :] + rel_pos - 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if self.rel is not None:
            attn = attn + self.rel[self.rel_index].permute(2, 0, 1).unsqueeze(0)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, rel_pos: int = 0) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads, rel_pos)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.ls = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ls * self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """timm ViT: patch conv, class token, position table, pre-norm blocks, an unused mask token."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 16) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 5, 16) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 16))  # never used in forward
        self.blocks = nn.Sequential(ViTBlock(16, 4), ViTBlock(16, 4))
        self.norm, self.head = nn.LayerNorm(16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class TinySwinLike(nn.Module):
    """Swin style: window attention with a relative-position bias table, patch merging by concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 2, stride=2)
        self.norm0 = nn.LayerNorm(8)
        self.block = ViTBlock(8, 2, rel_pos=4)
        self.merge_norm, self.reduction = nn.LayerNorm(32), nn.Linear(32, 16, bias=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm0(self.embed(x).permute(0, 2, 3, 1))  # B, H, W, C
        b, h, w, c = x.shape
        win = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, c)
        win = self.block(win)
        x = win.reshape(b, h // 2, w // 2, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        x = self.reduction(self.merge_norm(x))
        return self.head(x.mean((1, 2)))


class TinyUNet(nn.Module):
    """U-Net: down path, transposed-conv up path, skip concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(6, 10, 3, padding=1), nn.ReLU())
        self.up = nn.ConvTranspose2d(10, 6, 2, stride=2)
        self.dec = nn.Sequential(nn.Conv2d(12, 6, 3, padding=1), nn.GroupNorm(1, 6), nn.ReLU())
        self.out = nn.Conv2d(6, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        return self.out(self.dec(torch.cat([self.up(e2), e1], 1)))


class SeqModel(nn.Module):
    """A GRU-free sequence model: embedding, causal depthwise-separable conv, a torch MHA block, pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 12)
        self.dw = nn.Conv1d(12, 12, 3, padding=2, groups=12)
        self.pw = nn.Conv1d(12, 12, 1)
        self.attn = nn.MultiheadAttention(12, 3, batch_first=True)
        self.norm = nn.LayerNorm(12)
        self.out = nn.Linear(12, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        y = self.pw(F.silu(self.dw(x.transpose(1, 2))[..., : ids.shape[1]])).transpose(1, 2)
        x = self.norm(x + y)
        a, _ = self.attn(x, x, x)
        return self.out((x + a).mean(1))


class EinsumAttention(nn.Module):
    """Attention written with ``torch.einsum`` and plain parameter matrices (both orientations)."""

    def __init__(self, d: int = 12, h: int = 3) -> None:
        super().__init__()
        self.h = h
        self.wq, self.wk = nn.Parameter(torch.randn(d, d) * 0.3), nn.Parameter(torch.randn(d, d) * 0.3)
        self.wv, self.wo = nn.Parameter(torch.randn(d, d) * 0.3), nn.Parameter(torch.randn(d, d) * 0.3)
        self.norm = nn.LayerNorm(d)
        self.ff = nn.Linear(d, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        y = self.norm(x)
        q = torch.einsum("btd,de->bte", y, self.wq).view(b, t, self.h, -1)  # W stored [in, out]
        k = torch.einsum("btd,de->bte", y, self.wk).view(b, t, self.h, -1)
        v = torch.einsum("btd,ed->bte", y, self.wv).view(b, t, self.h, -1)  # W stored [out, in]
        s = torch.einsum("bqhd,bkhd->bhqk", q, k).softmax(-1)
        o = torch.einsum("bhqk,bkhd->bqhd", s, v).reshape(b, t, d)
        return self.ff(y + torch.einsum("bte,fe->btf", o, self.wo))


def _image(c: int = 3, s: int = 8) -> Callable[[], torch.Tensor]:
    return lambda: torch.randn(2, c, s, s, generator=torch.Generator().manual_seed(1))


#: name -> (builder, example input builder)
HANDWRITTEN: dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]] = {
    "mlp_class": (TwoLayerMLP, lambda: torch.randn(3, 6, generator=torch.Generator().manual_seed(1))),
    "plain_params": (PlainParamMLP, lambda: torch.randn(3, 5, generator=torch.Generator().manual_seed(1))),
    "resnet": (TinyResNet, _image()),
    "densenet": (TinyDenseNet, _image()),
    "inception": (Inception, _image()),
    "mobilenet_se": (TinyMobileNet, _image()),
    "convnext": (TinyConvNeXt, _image()),
    "vit": (TinyViT, _image()),
    "swin_like": (TinySwinLike, _image()),
    "unet": (TinyUNet, _image(2)),
    "einsum_attention": (EinsumAttention, lambda: torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(1))),
    "seq_model": (SeqModel, lambda: torch.randint(0, 20, (2, 7), generator=torch.Generator().manual_seed(1))),
}


def randomize(m: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics (so eval-mode outputs depend on every tensor)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                if mod.weight is not None:
                    mod.weight.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                    mod.bias.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            if "Norm" in type(mod).__name__ and not isinstance(mod, nn.modules.batchnorm._BatchNorm):
                w, b = getattr(mod, "weight", None), getattr(mod, "bias", None)  # HF RMS/T5 norms too
                if isinstance(w, nn.Parameter):
                    w.copy_(torch.rand(w.shape, generator=g) + 0.5)
                if isinstance(b, nn.Parameter):
                    b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return m


def build(name: str) -> tuple[nn.Module, Any]:
    torch.manual_seed(0)
    ctor, inp = HANDWRITTEN[name]
    return randomize(ctor().eval()), inp()


# --- transformers from tiny configs ---------------------------------------------------------------------

_TEXT = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
             max_position_embeddings=32)
_IMG = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32)

#: family -> (transformers class name, config class name, config kwargs, input kind)
HF_TINY: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "bert": ("BertModel", "BertConfig", _TEXT, "text"),
    "roberta": ("RobertaModel", "RobertaConfig", {**_TEXT, "max_position_embeddings": 40}, "text"),
    "gpt2": ("GPT2Model", "GPT2Config", dict(vocab_size=40, n_embd=16, n_layer=2, n_head=4, n_positions=32), "text"),
    "llama": ("LlamaModel", "LlamaConfig", {**_TEXT, "num_key_value_heads": 2}, "text"),
    "mistral": ("MistralModel", "MistralConfig", {**_TEXT, "num_key_value_heads": 4}, "text"),
    "qwen2": ("Qwen2Model", "Qwen2Config", {**_TEXT, "num_key_value_heads": 2}, "text"),
    "t5_encoder": ("T5EncoderModel", "T5Config", dict(vocab_size=40, d_model=16, d_kv=4, d_ff=32, num_layers=2,
                                                        num_heads=4), "text"),
    "vit": ("ViTModel", "ViTConfig", _IMG, "image"),
    "deit": ("DeiTModel", "DeiTConfig", _IMG, "image"),
    "dinov2": ("Dinov2Model", "Dinov2Config", {**_IMG, "mlp_ratio": 2}, "image"),
    "beit": ("BeitModel", "BeitConfig", {**_IMG, "use_relative_position_bias": True}, "image"),
    "swin": ("SwinModel", "SwinConfig", dict(image_size=16, patch_size=2, embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                                             window_size=2), "image"),
    "resnet": ("ResNetModel", "ResNetConfig", dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                                   layer_type="bottleneck"), "image32"),
    "convnext": ("ConvNextModel", "ConvNextConfig", dict(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1]),
                 "image32"),
    "mobilenet_v2": ("MobileNetV2Model", "MobileNetV2Config", dict(depth_multiplier=0.25, image_size=32), "image32"),
    "regnet": ("RegNetModel", "RegNetConfig", dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                                   groups_width=4), "image32"),
    "efficientnet": ("EfficientNetModel", "EfficientNetConfig", dict(image_size=32, width_coefficient=0.1,
                                                                     depth_coefficient=0.1, hidden_dim=128), "image32"),
    "poolformer": ("PoolFormerModel", "PoolFormerConfig", dict(hidden_sizes=[8, 16], depths=[1, 1],
                                                               num_encoder_blocks=2), "image32"),
}


def build_hf(family: str) -> tuple[nn.Module, Any]:
    import transformers

    cls_name, cfg_name, kw, kind = HF_TINY[family]
    torch.manual_seed(0)
    cfg = getattr(transformers, cfg_name)(**kw)
    m = randomize(getattr(transformers, cls_name)(cfg).eval())
    g = torch.Generator().manual_seed(1)
    if kind == "text":
        inp: dict[str, Any] = {"input_ids": torch.randint(0, 40, (2, 6), generator=g)}
        if family in ("gpt2", "llama", "mistral", "qwen2"):
            inp["use_cache"] = False  # no key/value cache among the outputs
        return m, inp
    size = 32 if kind == "image32" else 16
    return m, {"pixel_values": torch.randn(2, 3, size, size, generator=g)}


def outputs(m: nn.Module, inp: Any) -> list[torch.Tensor]:
    """Every floating output tensor of a forward pass (HF ModelOutputs too), in order."""
    with torch.no_grad():
        out = m(**inp) if isinstance(inp, dict) else m(*inp) if isinstance(inp, tuple) else m(inp)
    flat: list[torch.Tensor] = []

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            if o.is_floating_point():
                flat.append(o)
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, list | tuple):
            for v in o:
                walk(v)

    walk(out)
    return flat


__all__ = ["HANDWRITTEN", "HF_TINY", "build", "build_hf", "outputs", "randomize"]
del math
