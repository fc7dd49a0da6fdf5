"""After training: serving live readings and learning from them (`StreamPredictor`), with
drift detectors and guarded online updates; exporting step models for the edge (`export`).
Serving needs the `workflow` extra (the model comes from a `Forecaster`); river's detectors
need the `drift` extra, ONNX export and onnxruntime the `edge` extra."""

from liquidnets.deploy.adapt import AdaptConfig
from liquidnets.deploy.drift import PageHinkley, RiverDetector, make_detector
from liquidnets.deploy.export import export
from liquidnets.deploy.stream import Step, StreamPredictor

__all__ = [
    "AdaptConfig",
    "export",
    "PageHinkley",
    "RiverDetector",
    "make_detector",
    "Step",
    "StreamPredictor",
]
