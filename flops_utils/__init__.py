"""Code shared by the FLOps services, and the import paths ML repos rely on."""
