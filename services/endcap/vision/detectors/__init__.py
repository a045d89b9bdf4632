"""Detector plugins, selected by ``[vision.detector] type`` (see ``api.py``)."""
