"""pkcs11 layer."""
