"""Plain-torch backbones that return the two tensors the descriptor engine exports.

Each backbone maps a normalised (B, 3, H, W) image to ``(landmark_features, feature_map)``:
``feature_map`` is the tensor NetVLAD aggregates and ``landmark_features`` the preceding
layer's output at the same stride (the ConvNet-landmark method's local descriptors).
Module and parameter names follow the weight files users have (torchvision /
Patch-NetVLAD / lukemelas EfficientNet), so state_dicts load strictly.

| backbone | feature_map | landmark_features | stride |
|---|---|---|---|
| vgg16 | conv5_3 before ReLU (512) | conv5_2 before ReLU (512) | 16 |
| mobilenetv2 | features.13 output, a linear bottleneck (96) | features.12 output (96) | 16 |
| efficientnet_lite0 | _blocks.10 output, linear bottleneck (112) | _blocks.9 output (112) | 16 |
"""
from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Body(nn.Module):
    """VGG16 conv1_1..conv5_3 as ``encoder`` (indices as torchvision's ``features``,
    truncated after conv5_3: the layout of Patch-NetVLAD's and Nanne's encoders)."""

    name = "vgg16"
    stride = 16
    feature_dim = 512
    landmark_dim = 512
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    _CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in self._CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = v
        self.encoder = nn.Sequential(*layers[:-1])  # ends at conv5_3 (index 28), no ReLU

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.encoder[:26]:  # conv1_1 .. ReLU after conv5_1 (conv5_2 is index 26)
            x = layer(x)
        conv5_2 = self.encoder[26](x)
        conv5_3 = self.encoder[28](self.encoder[27](conv5_2))
        return conv5_2, conv5_3


def _conv_bn(in_ch: int, out_ch: int, k: int, stride: int = 1, groups: int = 1, act: bool = True,
             eps: float = 1e-5) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, k, stride, (k - 1) // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(out_ch, eps=eps)]
    if act:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


class _InvertedResidual(nn.Module):
    """MobileNetV2 block with torchvision's parameter names (``conv.N``)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_res = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(in_ch, hidden, 1))
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Body(nn.Module):
    """MobileNetV2 ``features.0..13`` (stride 16); deeper layers are not built."""

    name = "mobilenetv2"
    stride = 16
    feature_dim = 96
    landmark_dim = 96
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    # (expand t, channels c, repeats n, first stride s), torchvision order, up to stride 16
    _SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn(3, 32, 3, 2)]
        in_ch = 32
        for t, c, n, s in self._SETTINGS:
            for i in range(n):
                blocks.append(_InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        self.features = nn.Sequential(*blocks)  # indices 0..13

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.features[:13]:
            x = block(x)
        return x, self.features[13](x)


class _MBConv(nn.Module):
    """EfficientNet-Lite block with lukemelas parameter names (no squeeze-excite, ReLU6)."""

    def __init__(self, in_ch: int, out_ch: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(in_ch, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, k, stride, (k - 1) // 2, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._project_conv = nn.Conv2d(hidden, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=1e-3)
        self.use_res = stride == 1 and in_ch == out_ch
        self.act = nn.ReLU6(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.use_res else y


class EfficientNetLite0Body(nn.Module):
    """EfficientNet-Lite0 stem + ``_blocks.0..10`` (stride 16). Symmetric padding (the
    Lite variants' PyTorch ports use it; TF 'same' padding differs only at borders)."""

    name = "efficientnet_lite0"
    stride = 16
    feature_dim = 112
    landmark_dim = 112
    mean, std = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)  # Lite models: (x - 127) / 128
    # (kernel, stride, expand, out channels, repeats), up to stride 16
    _STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3))

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks: list[nn.Module] = []
        in_ch = 32
        for k, s, e, c, n in self._STAGES:
            for i in range(n):
                blocks.append(_MBConv(in_ch, c, k, s if i == 0 else 1, e))
                in_ch = c
        self._blocks = nn.ModuleList(blocks)  # indices 0..10
        self.act = nn.ReLU6(inplace=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:10]:
            x = block(x)
        return x, self._blocks[10](x)


BACKBONES: dict[str, type[nn.Module]] = {
    "vgg16": VGG16Body,
    "mobilenetv2": MobileNetV2Body,
    "efficientnet_lite0": EfficientNetLite0Body,
}


def make_backbone(name: str) -> nn.Module:
    """A backbone by name (random weights)."""
    if name not in BACKBONES:
        raise ValueError(f"backbone: {name!r} is not one of {sorted(BACKBONES)}")
    return BACKBONES[name]()
