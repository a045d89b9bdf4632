"""endcap_models: train, evaluate, calibrate and package the offers basket model (NOC side)."""
