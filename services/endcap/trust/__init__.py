"""trust: model packages the gateway may load (manifest, hashes; signature and TPM to come)."""
