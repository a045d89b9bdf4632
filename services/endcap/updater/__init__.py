"""The device updater: TUF fetch, RAUC install over D-Bus, health-gated commit, TPM-anchored floor."""
