"""TorchServe handler for the PyTorch twin of ember's MNIST net (scripts/torch_mnist.py's Net),
the peer ember's inference server is measured against in bench/serve.

The weights are an ember model file (mnist_train's safetensors, PyTorch names), the archive's
serialized file, read here without the safetensors package (the format is an 8-byte
little-endian header length, a JSON header of name -> dtype, shape, byte offsets, then the
raw little-endian tensors). Only float32 models: ember's int8 files have no PyTorch twin.

Requests (POST /predictions/{model}; TorchServe batches several into one call of handle()
when the model is registered with batch_size > 1 and max_batch_delay):
  application/octet-stream, 784 bytes   one 28 x 28 image of raw pixels, normalised here as
                                        ember does: (p - 127.5f) * (1.0f / 127.5f)
  application/octet-stream, a PNG file  one greyscale 28 x 28 PNG, light ink on black (a
                                        PNG of another size is an error: mnist_infer's
                                        crop-scale-centre preparation is not reproduced)
  application/json {"data": [784]}      one image already normalised (FP32), or
  application/json {"pixels": [784]}    raw pixels 0..255 (UINT8)
Each answer is JSON: {"class": k, "log_probs": [10 floats]}; a malformed request is answered
with an error (TorchServe turns the exception into a 5xx for the whole batch, its usual way).

Each worker process runs PyTorch on one thread (torch.set_num_threads(1)): with 2 workers
that is the 2 cores ember's server gets.
"""

import io
import json
import os
import struct

import numpy as np
import torch

from torch_mnist import net_for  # shipped in the archive with --extra-files

SIDE = 28
PIXELS = SIDE * SIDE
_DTYPES = {"F32": torch.float32}


def load_safetensors(path):
    """name -> tensor of an ember (or any float32) safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"'{path}': {len(raw)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"'{path}': header of {n} bytes in a file of {len(raw)}")
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    state = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _DTYPES:
            raise ValueError(f"'{path}': tensor '{name}' is {info['dtype']}; this handler "
                             "serves float32 models only")
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=_DTYPES[info["dtype"]])
        state[name] = t.reshape(info["shape"])
    return state


def normalise(pixels):
    """uint8 (784,) -> float32 (1, 28, 28), bit for bit as ember's PixelNormalization."""
    center = np.float32(127.5)
    scale = np.float32(1.0) / center
    return ((pixels.astype(np.float32) - center) * scale).reshape(1, SIDE, SIDE)


def decode_png(raw):
    from PIL import Image  # Pillow comes with torchserve

    img = Image.open(io.BytesIO(raw)).convert("L")
    if img.size != (SIDE, SIDE):
        raise ValueError(f"PNG of {img.size[0]} x {img.size[1]}; this handler takes 28 x 28")
    return np.asarray(img, dtype=np.uint8).reshape(PIXELS)


def to_input(request):
    """One request's body -> float32 (1, 28, 28)."""
    body = request.get("data")
    if body is None:
        body = request.get("body")
    if isinstance(body, (bytes, bytearray)):
        if len(body) == PIXELS:
            return normalise(np.frombuffer(bytes(body), np.uint8))
        if bytes(body[:8]) == b"\x89PNG\r\n\x1a\n":
            return normalise(decode_png(bytes(body)))
        try:  # JSON sent without its content type
            body = json.loads(bytes(body))
        except ValueError:
            raise ValueError(f"a body of {len(body)} bytes is neither 784 raw pixels, a PNG "
                             "file nor JSON") from None
    if isinstance(body, dict) and "data" in body:
        x = np.asarray(body["data"], dtype=np.float32)
        if x.size != PIXELS:
            raise ValueError(f"'data' holds {x.size} numbers, not 784")
        return x.reshape(1, SIDE, SIDE)
    if isinstance(body, dict) and "pixels" in body:
        p = np.asarray(body["pixels"])
        if p.size != PIXELS or p.min() < 0 or p.max() > 255:
            raise ValueError("'pixels' must hold 784 integers in 0..255")
        return normalise(p.astype(np.uint8))
    raise ValueError("expected 784 raw pixel bytes, a PNG file, or JSON {\"data\": [784 "
                     "floats]} or {\"pixels\": [784 integers]}")


class MnistHandler:
    def __init__(self):
        self.net = None

    def initialize(self, context):
        torch.set_num_threads(1)
        props = context.system_properties
        manifest = context.manifest
        path = os.path.join(props.get("model_dir"), manifest["model"]["serializedFile"])
        self.net = net_for(load_safetensors(path))

    def handle(self, data, context):
        x = torch.from_numpy(np.stack([to_input(r) for r in data]))  # (B, 1, 28, 28)
        with torch.inference_mode():
            log_probs = self.net(x)
        classes = log_probs.argmax(dim=1).tolist()
        return [{"class": c, "log_probs": lp} for c, lp in zip(classes, log_probs.tolist())]


_service = MnistHandler()


def handle(data, context):
    if _service.net is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
