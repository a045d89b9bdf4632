"""Vision: camera frames to shopper presence, dwell and focus events (``vision.zone``)."""
