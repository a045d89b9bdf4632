"""Endcap's test suite: unit/ (pure, fast), integration/ (real components), system/ (QEMU), fixtures/."""
