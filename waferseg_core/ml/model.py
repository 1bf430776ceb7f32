"""U-Net with ResNet-18/34/50 encoders, written here (no torchvision), plus a wafer-level head.

The stem keeps the die grid's full resolution (a die is the smallest thing that matters) and
four stride-2 stages go down to 1/16, so inputs padded to a multiple of 32 map back to dies
exactly. A width multiplier scales every stage; ``dropout`` sits before the heads and stays
active under MC-dropout. Outputs: per-die logits (9 classes), wafer-label logits (9) and a pooled
embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from waferseg_core.errors import InvalidInputError
from waferseg_core.modelio import IN_CHANNELS, NUM_LABELS

NUM_CLASSES = 9


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = _shortcut(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        """The block on ``x``."""
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.down(x))


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 residual block with 4x expansion (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = _shortcut(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        """The block on ``x``."""
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.down(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNetEncoder(nn.Module):
    """Full-resolution stem and four stages; returns the five feature maps, finest first."""

    def __init__(
        self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], width: float
    ) -> None:
        super().__init__()
        w = [max(8, int(c * width)) for c in (32, 64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(IN_CHANNELS, w[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(w[0]),
            nn.ReLU(inplace=True),
        )
        cin = w[0]
        self.stages = nn.ModuleList()
        self.channels = [w[0]]
        for i, n in enumerate(layers):
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if j == 0 else 1
                blocks.append(block(cin, w[i + 1], stride))
                cin = w[i + 1] * block.expansion
            self.stages.append(nn.Sequential(*blocks))
            self.channels.append(cin)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Feature maps from full resolution down to 1/16."""
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


class UpBlock(nn.Module):
    """Upsample x2, concatenate the skip, two 3x3 convolutions."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin + cskip, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsampled ``x`` fused with ``skip``."""
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        out: Tensor = self.conv(torch.cat([x, skip], dim=1))
        return out


class WaferUNet(nn.Module):
    """ResNet U-Net with a per-die head, a wafer-label head and an embedding."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        width: float = 1.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(block, layers, width)
        ch = self.encoder.channels
        dec = [max(8, int(c * width)) for c in (256, 128, 64, 32)]
        self.up = nn.ModuleList(
            [
                UpBlock(ch[4], ch[3], dec[0]),
                UpBlock(dec[0], ch[2], dec[1]),
                UpBlock(dec[1], ch[1], dec[2]),
                UpBlock(dec[2], ch[0], dec[3]),
            ]
        )
        self.dropout = nn.Dropout2d(dropout)
        self.seg_head = nn.Conv2d(dec[3], NUM_CLASSES, 1)
        self.embed_dim = ch[4] + dec[3]
        self.wafer_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embed_dim, NUM_LABELS))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-die logits, wafer-label logits and the embedding of an encoded batch."""
        feats = self.encoder(x)
        y = feats[4]
        for block, skip in zip(self.up, reversed(feats[:4]), strict=True):
            y = block(y, skip)
        seg = self.seg_head(self.dropout(y))
        # Pool only over dies on the wafer (channel 0 is "no die"), so padding does not dilute.
        on = 1.0 - x[:, :1]
        on_low = F.avg_pool2d(on, 16)  # the deepest features are at 1/16
        pooled_deep = (feats[4] * on_low).sum((2, 3)) / on_low.sum((2, 3)).clamp_min(1e-6)
        pooled_fine = (y * on).sum((2, 3)) / on.sum((2, 3)).clamp_min(1e-6)
        emb = torch.cat([pooled_deep, pooled_fine], dim=1)
        return seg, self.wafer_head(emb), emb


_ARCHS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}


def arch_names() -> list[str]:
    """Valid base names; any may carry a width suffix such as ``resnet18-w0.5``."""
    return list(_ARCHS)


def create_model(name: str, *, dropout: float = 0.1) -> WaferUNet:
    """Build a model by name (``resnet18``, ``resnet34``, ``resnet50``, e.g. ``resnet18-w0.5``).

    Raises:
        InvalidInputError: Unknown name; the message lists the valid ones.
    """
    base, _, suffix = name.partition("-w")
    if base not in _ARCHS:
        raise InvalidInputError(
            f"unknown architecture {name!r}; expected one of "
            f"{', '.join(arch_names())} (optionally with -w<width>, e.g. resnet18-w0.5)"
        )
    try:
        width = float(suffix) if suffix else 1.0
    except ValueError:
        raise InvalidInputError(
            f"architecture width must be a number, found {suffix!r} in {name!r}"
        ) from None
    if not 0.1 <= width <= 4:
        raise InvalidInputError(f"architecture width must be within 0.1-4, found {width}")
    block, layers = _ARCHS[base]
    return WaferUNet(block, layers, width, dropout)


def enable_mc_dropout(model: nn.Module) -> Callable[[], None]:
    """Put dropout layers in training mode (BatchNorm stays in eval); returns an undo function."""
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout | nn.Dropout2d)]
    for m in layers:
        m.train()

    def undo() -> None:
        for m in layers:
            m.eval()

    return undo
