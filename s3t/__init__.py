"""S3T: self-supervised pre-training with Swin Transformer for music classification.

The core library. Importing it performs no I/O, seeding, device selection or
logging set-up; it needs only torch, timm, nnAudio, numpy and scipy (plus
soundfile/av for decoding, imported lazily by :mod:`s3t.audio`).
"""

__version__ = "0.1.0"
