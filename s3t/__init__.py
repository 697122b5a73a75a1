"""S3T: self-supervised pre-training with Swin Transformer for music classification.

The core library. Importing it performs no I/O, seeding, device selection or
logging set-up; it needs only torch, timm, numpy and scipy (plus soundfile/av for
decoding, imported lazily by :mod:`s3t.audio`). nnAudio, whose CQT this library used
before its own multi-rate one, remains only as a reference in the tests and benchmarks.
"""

__version__ = "0.1.0"
