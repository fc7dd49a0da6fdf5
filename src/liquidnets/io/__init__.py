"""The saved model: a folder of safetensors weights, a JSON config and JSON metadata.

Loading checks the format version and every tensor's shape, and never unpickles anything.
"""

from liquidnets.io.bundle import BundleError, hand_edits, load_bundle, save_bundle

__all__ = ["BundleError", "hand_edits", "load_bundle", "save_bundle"]
