"""Shipped models (package data): ``<name>.onnx`` + ``<name>.onnx.json``, ``registry.json``."""
