"""beats-extract: audio embeddings with BEATs.

:class:`BEATsFeatureExtractor` turns audio files and arrays into embeddings (one vector
per clip, or one per time step with timestamps), with pluggable poolings, layer
selection and bounded memory for long recordings; :class:`FeatureIndex` searches them;
:func:`detect_events` turns a fine-tuned checkpoint's clip predictions over long recordings
into tables of detections (:class:`ClipClassifier` classifies clips and whole files);
:mod:`beats_extract.hear` follows the HEAR benchmark API; :func:`export_onnx` writes a model as one
ONNX graph that :class:`OnnxModel` runs with onnxruntime alone. The public API is importable
from the package root; names are resolved lazily so that ``import beats_extract`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beats_core.lazy import lazy_exports
from beats_extract.__about__ import __version__

if TYPE_CHECKING:
    from beats_extract.classify import ClipClassifier
    from beats_extract.detect import Detector, RecordingDetections, detect_events, merge_events
    from beats_extract.export import export_onnx, quantize_onnx
    from beats_extract.extractor import (
        BEATsFeatureExtractor,
        ClipFeatures,
        FileFeatures,
        FrameEmbeddings,
        SkippedFileWarning,
    )
    from beats_extract.inputs import find_audio_files
    from beats_extract.onnx_model import OnnxMetadata, OnnxModel
    from beats_extract.poolings import Pooling, get_pooling, list_poolings
    from beats_extract.search import FeatureIndex, SearchHit
    from beats_extract.storage import SavedFeatures, load_features, save_features

_LAZY = {
    "BEATsFeatureExtractor": ".extractor",
    "ClipFeatures": ".extractor",
    "FileFeatures": ".extractor",
    "FrameEmbeddings": ".extractor",
    "SkippedFileWarning": ".extractor",
    "Pooling": ".poolings",
    "get_pooling": ".poolings",
    "list_poolings": ".poolings",
    "FeatureIndex": ".search",
    "SearchHit": ".search",
    "SavedFeatures": ".storage",
    "load_features": ".storage",
    "save_features": ".storage",
    "find_audio_files": ".inputs",
    "export_onnx": ".export",
    "quantize_onnx": ".export",
    "OnnxModel": ".onnx_model",
    "OnnxMetadata": ".onnx_model",
    "ClipClassifier": ".classify",
    "Detector": ".detect",
    "RecordingDetections": ".detect",
    "detect_events": ".detect",
    "merge_events": ".detect",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
