"""The global descriptor: NetVLAD models in plain torch (``models``), the NetVLAD + PCA
head, fitting clusters/whitening to images, ONNX export with metadata, the embedded
default model, and the onnxruntime engine that turns an image into an ``EngineOutput``."""
