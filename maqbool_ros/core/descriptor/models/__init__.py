"""Torch definitions of the descriptor networks (backbones, NetVLAD + WPCA) and their
weight loaders. Used to build and export ONNX models; inference runs in onnxruntime."""
